"""Benchmark `corpus build` against trl's own SFT preparation and against a bare batch encode.

    python bench/build_bench.py [--sizes 12,50] [--tokenizer /work/shared/data/tokenizers/qwen3] [--max-length 2048]

The real data in /work/shared/data (KoCoNovel scenes, 동백꽃, BACKSpeech transcripts, ChatbotData pairs) is turned
into marker text once (novels → books of paragraphs, transcripts and Q/A pairs → dialogue blocks) and replicated
deterministically (copy k gets its own titles, so dedup keeps it) into a temp dir until the corpus reaches each
size in MB. Then, each in a fresh subprocess so memory figures are its own:

  (a) ours:  the whole `malmungchi corpus build` (read, lint gate, parse, render, dedup, encode, chunk, split,
             pack, write Parquet + manifest);
  (b) trl:   the same rendered texts (our renderer's output, dumped once) → datasets.map(tokenize, batched,
             num_proc=cores) + EOS → trl.pack_dataset(strategy="bfd");
  (c) floor: the same rendered texts → the fast tokenizer's batch encode, nothing else.

Printed: tokens/s of each, ours/trl and floor/ours ratios, packing efficiency of (a) and (b) and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path("/work/shared/data")


def _books_from_data() -> list[str]:
    """The shared data as marker-text books (deterministic order)."""
    import csv

    books: list[str] = []
    for f in sorted((DATA / "longform" / "koconovel").glob("*.text.jsonl")):
        scenes = [json.loads(x)["text"] for x in f.read_text(encoding="utf-8").splitlines() if x.strip()]
        paras = "\n\n".join(s.replace("\n", " ") for s in scenes)
        books.append(f"|START_OF_TITLE|>{f.name.split('.')[0]}|END_OF_TITLE|>\n\n{paras}\n")
    dong = (DATA / "longform" / "satkorean" / "kim_yujeong_dongbaekkkot.utf8.txt").read_text(encoding="utf-8")
    books.append("|START_OF_TITLE|>동백꽃|END_OF_TITLE|>\n\n" + dong.replace("\r\n", "\n").replace("|", "｜") + "\n")
    for f in sorted((DATA / "transcripts" / "backspeech").glob("*.csv")):
        rows = list(csv.reader(f.open(encoding="utf-8", newline=""), delimiter="\t"))
        turns = "\n".join(f"{r[2].replace('#', '')}: {r[3].replace('|', '｜')}" for r in rows if len(r) == 4)
        books.append(f"|START_OF_TITLE|>{f.stem}|END_OF_TITLE|>\n\n|SOUND|>(방송 시작)\n\n"
                     f"|START_OF_DIALOGUE|>\n{turns}\n|END_OF_DIALOGUE|>\n")
    rows = list(csv.reader((DATA / "dialogue" / "chatbot_data" / "ChatbotData.csv").open(encoding="utf-8",
                                                                                       newline="")))[1:]
    for i in range(0, len(rows), 50):  # 50 Q/A pairs per book, each pair one dialogue
        dialogues = "\n\n".join(f"|START_OF_DIALOGUE|>\n손님: {q}\n챗봇: {a}\n|END_OF_DIALOGUE|>" for q, a, _ in rows[i:i + 50])
        books.append(f"|START_OF_TITLE|>챗봇 {i // 50}|END_OF_TITLE|>\n\n{dialogues}\n")
    return books


def make_corpus(root: Path, megabytes: float) -> int:
    base = _books_from_data()
    target = int(megabytes * (1 << 20))
    size, copy = 0, 0
    root.mkdir(parents=True)
    while size < target:
        parts = []
        for n, b in enumerate(base):
            parts.append(b.replace("|END_OF_TITLE|>", f" ({copy}-{n})|END_OF_TITLE|>", 1) + "|END_OF_BOOK|>\n\n")
        # ~1 MB files so the reader pool has work to share
        text = "".join(parts)
        data = text.encode("utf-8")
        for i in range(0, len(parts), 40):
            chunk = "".join(parts[i:i + 40]).encode("utf-8")
            (root / f"copy{copy:03d}_{i // 40:03d}.txt").write_bytes(chunk)
        size += len(data)
        copy += 1
    return size


def dump_rendered(corpus: Path, tok_dir: str, out: Path, max_length: int) -> None:
    """Our renderer's texts (what every method tokenizes), one JSON string per line."""
    from malmungchi.prep.build import read_all
    from malmungchi.prep.policies import Policies
    from malmungchi.prep.readers import find_inputs
    from malmungchi.prep.render import TextRenderer
    from malmungchi.schemas.config import BuildConfig
    from malmungchi.schemas.registry import default_registry

    cfg = BuildConfig(max_length=max_length)
    reg = default_registry()
    r = TextRenderer(Policies(reg, cfg), cfg.speakers)
    with out.open("w", encoding="utf-8") as fh:
        for s in read_all(find_inputs([str(corpus)]), reg, cfg, None):
            for d in s.documents:
                fh.write(json.dumps(r.render(d, s.key).text, ensure_ascii=False) + "\n")


def _peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024


def worker(method: str, corpus: str, texts: str, tok_dir: str, max_length: int, out: str) -> dict:
    if method == "ours":
        from click.testing import CliRunner

        import transformers  # noqa: F401  (imports are the same for every method; not timed)

        from malmungchi.cli import main

        t = time.perf_counter()
        r = CliRunner().invoke(main, ["corpus", "build", corpus, "--tokenizer", tok_dir, "--out", out,
                                      "--max-length", str(max_length), "--json"], catch_exceptions=False)
        wall = time.perf_counter() - t
        assert r.exit_code == 0, r.output[-2000:]
        rep = json.loads(r.output)
        return {"wall": wall, "tokens": rep["tokens"], "efficiency": rep["packing"]["efficiency"],
                "lost": rep["truncation"]["lost_tokens"], "peak_mb": _peak_mb()}
    lines = [json.loads(x) for x in open(texts, encoding="utf-8")]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tok_dir)
    special = ["<|start_of_title|>", "<|end_of_title|>", "<|start_of_dialogue|>", "<|end_of_dialogue|>",
               "<|end_of_book|>", "<|sound|>"]
    tok.add_tokens(special, special_tokens=True)
    if method == "floor":
        t = time.perf_counter()
        n = 0
        batch = 2048
        for i in range(0, len(lines), batch):
            n += sum(len(ids) for ids in tok(lines[i:i + batch], add_special_tokens=True)["input_ids"])
        wall = time.perf_counter() - t
        return {"wall": wall, "tokens": n + len(lines), "efficiency": None, "lost": 0, "peak_mb": _peak_mb()}
    # trl: the standard recipe
    import datasets
    from trl import pack_dataset

    datasets.disable_progress_bars()
    datasets.disable_caching()
    t = time.perf_counter()
    ds = datasets.Dataset.from_dict({"text": lines})
    eos = tok.eos_token_id

    def tokenize(batch):
        ids = tok(batch["text"], add_special_tokens=True)["input_ids"]
        return {"input_ids": [x + [eos] for x in ids]}

    ds = ds.map(tokenize, batched=True, remove_columns=["text"], num_proc=os.cpu_count())
    before = sum(len(x) for x in ds["input_ids"])
    packed = pack_dataset(ds, max_length, strategy="bfd")
    rows = packed.num_rows
    tokens = sum(len(x) for x in packed["input_ids"])
    wall = time.perf_counter() - t
    return {"wall": wall, "tokens": before, "efficiency": tokens / (rows * max_length), "lost": before - tokens,
            "peak_mb": _peak_mb()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="12,50")
    ap.add_argument("--tokenizer", default=str(DATA / "tokenizers" / "qwen3"))
    ap.add_argument("--max-length", type=int, default=2048)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--corpus", help=argparse.SUPPRESS)
    ap.add_argument("--texts", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.corpus, a.texts, a.tokenizer, a.max_length, a.out)))
        return
    print(f"cores: {os.cpu_count()}, tokenizer: {a.tokenizer}, max_length: {a.max_length}")
    for mb in [float(x) for x in a.sizes.split(",")]:
        tmp = Path(tempfile.mkdtemp(prefix="mmc-bench-"))
        try:
            size = make_corpus(tmp / "corpus", mb)
            dump_rendered(tmp / "corpus", a.tokenizer, tmp / "texts.jsonl", a.max_length)
            res = {}
            for method in ("floor", "ours", "trl"):
                cmd = [sys.executable, __file__, "--worker", method, "--corpus", str(tmp / "corpus"), "--texts",
                       str(tmp / "texts.jsonl"), "--tokenizer", a.tokenizer, "--max-length", str(a.max_length),
                       "--out", str(tmp / "build")]
                p = subprocess.run(cmd, capture_output=True, text=True)
                if p.returncode:
                    print(p.stderr[-3000:])
                    raise SystemExit(f"{method} failed")
                res[method] = json.loads(p.stdout.strip().splitlines()[-1])
            print(f"\ncorpus {size / (1 << 20):.1f} MB ({res['ours']['tokens']:,} tokens)")
            print(f"{'method':8} {'wall s':>8} {'tokens/s':>12} {'packing':>8} {'lost tok':>9} {'peak MB':>8}")
            for m in ("ours", "trl", "floor"):
                r = res[m]
                eff = f"{r['efficiency']:.2%}" if r["efficiency"] is not None else "-"
                print(f"{m:8} {r['wall']:8.2f} {r['tokens'] / r['wall']:12,.0f} {eff:>8} {r['lost']:9,} "
                      f"{r['peak_mb']:8.0f}")
            ours, trl, floor = (res[m]["tokens"] / res[m]["wall"] for m in ("ours", "trl", "floor"))
            print(f"ours/trl throughput {ours / trl:.2f}x (goal ≥ 2x); floor/ours {floor / ours:.2f}x (goal ≤ 1.3x)")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
