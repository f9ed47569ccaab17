"""Benchmark `corpus build` against trl's own SFT preparation and against a bare batch encode.

    python bench/build_bench.py [--sizes 12,50] [--tokenizer ../shared/data/tokenizers/qwen3] [--max-length 2048]

The real data in ../shared/data (beside the checkout) (KoCoNovel scenes, 동백꽃, BACKSpeech transcripts, ChatbotData pairs) is turned
into marker text once (novels → books of paragraphs, transcripts and Q/A pairs → dialogue blocks) and replicated
deterministically (copy k gets its own titles, so dedup keeps it) into a temp dir until the corpus reaches each
size in MB. Then, each in a fresh subprocess so memory figures are its own, and one after the other so they see
the same machine:

  (a) ours:  the whole build through the library (what `malmungchi corpus build` runs, without the CLI's imports):
             tokenizer load, read, lint gate, parse, render, dedup, encode, chunk, split, pack, report, write
             Parquet + manifest + tokenizer; it encodes with tiktoken's BPE (`--encoder auto`: the same ids as the
             tokenizer's, checked; see prep/fastbpe.py);
  (a') ours-tokenizers: the same with `--encoder tokenizers` (the tokenizer's own encode), to show what tiktoken
             brings;
  (b) trl:   trl's own SFT preparation, as SFTTrainer runs it: `SFTTrainer._prepare_dataset` (add EOS, tokenize
             each example, build labels, BFD `pack_dataset`) on a `datasets.Dataset` of the same rendered texts (our
             renderer's output, dumped once), with the same tokenizer and special tokens and `dataset_num_proc` =
             cores (tokenizer loading not timed);
  (b') trl-batched: the fastest preparation trl's pieces allow — one batched `datasets.map(tokenize + EOS,
             num_proc=cores)`, then `trl.pack_dataset(strategy="bfd")` — a lower bound for any trl-based pipeline;
  (c) floor: the same rendered texts → the Rust tokenizer's `encode_batch` (what `tokenizer(texts)` runs; in
             batches of ~4M characters, the floor's fastest) with the ids taken out as int32 arrays, nothing else
             (tokenizer loading not timed);
  (c') floor-fast: the same with `encode_batch_fast` (no offsets), the cheapest encode the tokenizer offers;
  (c'') floor-tiktoken: the same batches through the tiktoken encoder ours uses (`encode.encode_fast` with
             `FastBPE`, a thread per core; setting it up not timed): how far ours is from a bare encode with its own
             encoder.

The same imports (transformers' AutoTokenizer, which pulls in torch) are done before timing in every method.
With `--repeat N` every method runs N times, interleaved (floor, ours, …, floor, ours, …), and the fastest run of
each counts: this machine's speed drifts by ±20% over minutes, which best-of-N and interleaving even out.
Printed: tokens/s of each, ours/trl, ours/trl-batched and floor/ours ratios, packing efficiency of (a) and (b), tokens kept and lost
(trl's BFD truncates every sequence longer than max_length; ours cuts long documents at paragraph/turn bounds and
only loses single segments longer than a row), and peak RSS of the timed process and of its largest child.
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

from machine import print_machine, shared_data  # bench/machine.py: what this ran on, and the data
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
DATA = shared_data()  # ../shared/data beside the checkout (bench/machine.py)
# the floors' batches: ~4M characters, their fastest (floor-tiktoken at 51.6 MB on 2 cores, 2026-12-04: 1M 2.31-2.36 s,
# 4M 1.67-1.70 s, 16M 1.65-1.84 s, one batch 1.73-1.75 s), as are ours (BATCH_CHARS; 1M: no better in an A/B)
FLOOR_BATCH_CHARS = 4 << 20
METHODS = ("floor", "floor-fast", "floor-tiktoken", "ours", "ours-tokenizers", "trl", "trl-batched")


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


def dump_rendered(corpus: Path, tok_dir: str, out: Path, max_length: int) -> int:
    """Our renderer's texts (what every method tokenizes), one JSON string per line, deduplicated as ours does."""
    from malmungchi.prep.stream import stream
    from malmungchi.prep.readers import find_inputs
    from malmungchi.schemas.config import BuildConfig
    from malmungchi.schemas.registry import default_registry

    cfg = BuildConfig(max_length=max_length)
    seen, n = set(), 0
    with out.open("w", encoding="utf-8") as fh:
        for s, rendered in stream(find_inputs([str(corpus)]), default_registry(), cfg, None, True):
            for _, r in rendered or ():
                if isinstance(r, str) or r is None or r.dedup_key() in seen:  # dropped: no text, or markers only
                    continue
                seen.add(r.dedup_key())
                fh.write(json.dumps(r.text, ensure_ascii=False) + "\n")
                n += 1
    return n


def _cpu() -> tuple[float, float]:
    """CPU seconds (user + system) of this process (all its threads) and of its finished children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


def _peak_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return own / 1024, kids / 1024


SPECIAL = ["<|start_of_title|>", "<|end_of_title|>", "<|start_of_dialogue|>", "<|end_of_dialogue|>",
           "<|end_of_book|>", "<|sound|>"]


def worker(method: str, corpus: str, texts: str, tok_dir: str, max_length: int, out: str) -> dict:
    from transformers import AutoTokenizer  # the same (untimed) imports for every method; pulls in torch

    AutoTokenizer.__name__  # noqa: B018  (resolve the lazy import now)
    if method in ("ours", "ours-tokenizers"):
        from malmungchi.prep.build import plan
        from malmungchi.prep.stats import report
        from malmungchi.prep.write import write_build
        from malmungchi.schemas.config import BuildConfig
        from malmungchi.schemas.registry import default_registry

        cpu0 = _cpu()
        t = time.perf_counter()
        p = plan([corpus], BuildConfig(max_length=max_length, tokenizer=tok_dir), default_registry(),
                 encoder="auto" if method == "ours" else "tokenizers")
        t_plan = time.perf_counter()
        write_build(p, out, force=True)  # as the CLI: the report is made while the data files are written
        rep = report(p)
        wall = time.perf_counter() - t
        cpu = [b - a for a, b in zip(cpu0, _cpu())]
        assert sorted(p.registration.added) == sorted(SPECIAL), p.registration.added
        own, kids = _peak_mb()
        return {"wall": wall, "plan": t_plan - t, "cpu_main": cpu[0], "cpu_readers": cpu[1], "tokens": rep["tokens"],
                "kept": rep["tokens"], "efficiency": rep["packing"]["efficiency"],
                "lost": rep["truncation"]["lost_tokens"], "rows": rep["packing"]["rows"],
                "docs": rep["documents"]["kept"], "duplicates": rep["documents"]["duplicates"], "peak_mb": own,
                "child_mb": kids}
    lines = [json.loads(x) for x in open(texts, encoding="utf-8")]
    tok = AutoTokenizer.from_pretrained(tok_dir)
    tok.add_tokens(SPECIAL, special_tokens=True)
    eos = tok.eos_token_id
    if method in ("floor", "floor-fast", "floor-tiktoken"):
        import numpy as np

        from malmungchi.prep.encode import encode_fast
        from malmungchi.prep.fastbpe import FastBPE

        backend = tok.backend_tokenizer
        if method == "floor-tiktoken":
            fast = FastBPE.of(tok)

            def encode(texts, add_special_tokens):  # what ours calls (a text that is not NFC: the tokenizer)
                return [SimpleNamespace(ids=x) for x in encode_fast(backend, texts, add_special_tokens, fast)]
        else:
            encode = backend.encode_batch if method == "floor" else backend.encode_batch_fast
        cpu0 = _cpu()
        t = time.perf_counter()
        n = 0
        i = 0
        while i < len(lines):  # batches of FLOOR_BATCH_CHARS
            j, size = i, 0
            while j < len(lines) and size < FLOOR_BATCH_CHARS:
                size += len(lines[j])
                j += 1
            for e in encode(lines[i:j], add_special_tokens=True):
                n += len(np.asarray(e.ids, dtype=np.int32)) + 1  # + the stop token
            i = j
        wall = time.perf_counter() - t
        own, kids = _peak_mb()
        return {"wall": wall, "cpu_main": _cpu()[0] - cpu0[0], "cpu_readers": 0.0, "tokens": n, "kept": n,
                "efficiency": None, "lost": 0, "rows": None, "docs": len(lines), "peak_mb": own, "child_mb": kids}
    import datasets
    import pyarrow.compute as pc

    datasets.disable_progress_bars()
    datasets.disable_caching()
    if method == "trl":  # trl's own preparation, exactly as SFTTrainer calls it (labels, packing, per-example map)
        import tempfile

        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(output_dir=tempfile.mkdtemp(), max_length=max_length, packing=True, packing_strategy="bfd",
                         dataset_num_proc=os.cpu_count(), report_to=[], use_cpu=True, bf16=False)
        trainer = SimpleNamespace(_tokenizer=tok, chat_template=None, completion_only_loss=None)
        t = time.perf_counter()
        ds = datasets.Dataset.from_dict({"text": lines})
        packed = SFTTrainer._prepare_dataset(trainer, ds, tok, args, True, None, "train")
        rows = packed.num_rows
        wall = time.perf_counter() - t
        before = sum(len(x) for x in backend_ids(tok, lines))  # what it tokenized, counted after the clock stops
    else:  # trl-batched: the fastest use of trl's pieces — one batched map, then its BFD packing
        from trl import pack_dataset

        t = time.perf_counter()
        ds = datasets.Dataset.from_dict({"text": lines})

        def tokenize(batch):
            ids = tok(batch["text"], add_special_tokens=True)["input_ids"]
            return {"input_ids": [x if x and x[-1] == eos else x + [eos] for x in ids]}

        ds = ds.map(tokenize, batched=True, remove_columns=["text"], num_proc=os.cpu_count())
        packed = pack_dataset(ds, max_length, strategy="bfd")
        rows = packed.num_rows
        wall = time.perf_counter() - t
        before = int(pc.sum(pc.list_value_length(ds.data.column("input_ids"))).as_py())
    kept = int(pc.sum(pc.list_value_length(packed.data.column("input_ids"))).as_py())
    own, kids = _peak_mb()
    return {"wall": wall, "tokens": before, "kept": kept, "efficiency": kept / (rows * max_length),
            "lost": before - kept, "rows": rows, "docs": len(lines), "peak_mb": own, "child_mb": kids}


def backend_ids(tok, lines: list[str]):
    """Each text's ids plus the EOS trl appends (the tokens trl's preparation tokenized)."""
    for e in tok.backend_tokenizer.encode_batch([x + tok.eos_token for x in lines], add_special_tokens=True):
        yield e.ids


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="12,50")
    ap.add_argument("--tokenizer", default=str(DATA / "tokenizers" / "qwen3"))
    ap.add_argument("--max-length", type=int, default=2048)
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    ap.add_argument("--repeat", type=int, default=1, help="runs of each method (interleaved); the fastest counts")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--corpus", help=argparse.SUPPRESS)
    ap.add_argument("--texts", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.corpus, a.texts, a.tokenizer, a.max_length, a.out)))
        return
    print_machine()
    print(f"cores: {os.cpu_count()}, tokenizer: {a.tokenizer}, max_length: {a.max_length}")
    for mb in [float(x) for x in a.sizes.split(",")]:
        tmp = Path(tempfile.mkdtemp(prefix="mmc-bench-"))
        try:
            size = make_corpus(tmp / "corpus", mb)
            n_texts = dump_rendered(tmp / "corpus", a.tokenizer, tmp / "texts.jsonl", a.max_length)
            res: dict[str, dict] = {}
            for _ in range(a.repeat):
                for method in a.methods.split(","):
                    cmd = [sys.executable, __file__, "--worker", method, "--corpus", str(tmp / "corpus"), "--texts",
                           str(tmp / "texts.jsonl"), "--tokenizer", a.tokenizer, "--max-length",
                           str(a.max_length), "--out", str(tmp / "build")]
                    p = subprocess.run(cmd, capture_output=True, text=True)
                    if p.returncode:
                        print(p.stderr[-3000:])
                        raise SystemExit(f"{method} failed")
                    run = json.loads(p.stdout.strip().splitlines()[-1])
                    if method not in res or run["wall"] < res[method]["wall"]:
                        res[method] = run
            o = res.get("ours")
            if o:
                assert o["docs"] == n_texts, (o["docs"], n_texts)  # every method sees the same documents
            print(f"\ncorpus {size / (1 << 20):.1f} MB, {n_texts:,} rendered documents"
                  + (f", {o['tokens']:,} tokens (ours: {o['plan']:.1f} s plan, {o['wall'] - o['plan']:.1f} s report "
                     f"+ write)" if o else ""))
            if a.repeat > 1:
                print(f"fastest of {a.repeat} interleaved runs of each method:")
            print(f"{'method':15} {'wall s':>7} {'tokens/s':>10} {'tokens':>11} {'kept':>11} {'lost':>9} "
                  f"{'rows':>7} {'packing':>8} {'peak MB':>8} {'child MB':>8}")
            for m in [m for m in ("ours", "ours-tokenizers", "trl", "trl-batched", "floor", "floor-fast",
                                  "floor-tiktoken") if m in res]:
                r = res[m]
                eff = f"{r['efficiency']:.2%}" if r["efficiency"] is not None else "-"
                rows = f"{r['rows']:,}" if r["rows"] is not None else "-"
                print(f"{m:15} {r['wall']:7.2f} {r['tokens'] / r['wall']:10,.0f} {r['tokens']:11,} {r['kept']:11,} "
                      f"{r['lost']:9,} {rows:>7} {eff:>8} {r['peak_mb']:8.0f} {r['child_mb']:8.0f}")
            rate = {m: r["tokens"] / r["wall"] for m, r in res.items()}
            if "ours" in rate:
                if "trl" in rate:
                    print(f"ours/trl throughput {rate['ours'] / rate['trl']:.2f}x (goal ≥ 2x)")
                if "trl-batched" in rate:
                    fast = res["trl-batched"]
                    print(f"ours/trl-batched {rate['ours'] / rate['trl-batched']:.2f}x "
                          f"({rate['ours'] / (fast['kept'] / fast['wall']):.2f}x counting only the tokens it keeps)")
                if "floor" in rate:
                    print(f"floor/ours {rate['floor'] / rate['ours']:.2f}x (goal ≤ 1.3x)")
                if "floor-fast" in rate:
                    print(f"floor-fast/ours {rate['floor-fast'] / rate['ours']:.2f}x (encode_batch_fast, for reference)")
                if "ours-tokenizers" in rate:
                    print(f"ours/ours-tokenizers {rate['ours'] / rate['ours-tokenizers']:.2f}x (what tiktoken brings)")
                if "floor-tiktoken" in rate:
                    f = res["floor-tiktoken"]
                    work = o["cpu_main"] + o["cpu_readers"]
                    print(f"cpu seconds: ours {work:.2f} (build process {o['cpu_main']:.2f}, readers "
                          f"{o['cpu_readers']:.2f}), floor-tiktoken {f['cpu_main']:.2f}: {work / f['cpu_main']:.2f}x "
                          f"the work (both runs use every core)")
                    print(f"ratio ours / floor-tiktoken: {rate['floor-tiktoken'] / rate['ours']:.2f}x (ours' time over a "
                          f"bare encode of the same texts with its own encoder; goal ≤ 2x)")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
