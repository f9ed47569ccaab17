"""Lint throughput and memory against two floors, on a generated marker corpus.

    python bench/lint_bench.py [--mb 200] [--big-mb 500] [--work DIR]

1. Generates (deterministically, seed 0) a marker corpus of at least --mb MB in many files from the bundled
   sample and ../shared/data/longform (KoCoNovel scenes and 동백꽃), with a sprinkling of real defects.
2. Times, over the same files: `malmungchi corpus lint` (library call, all cores), `grep -c '|>'` (the I/O
   floor) and a Python pass that only reads, decodes and checks NFC (the decode floor), the latter both in
   one process and over the same process pool as lint. Prints MB/s, MB/s per core, ratios and peak memory.
3. Lints one --big-mb MB file in a child process and reports its peak RSS against the file size.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
import unicodedata
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from machine import print_machine  # bench/machine.py: what this ran on

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SAMPLE = ROOT / "src" / "malmungchi" / "data" / "sample"
SPEAKERS = ["민지", "준호", "할머니", "아버지", "선생님", "수아", "철수", "영희"]
SOUNDS = ["흐느끼는 소리", "웃음", "문 닫히는 소리", "빗소리", "기침", "한숨"]


def source_sentences() -> list[str]:
    """Sentences in reading order: KoCoNovel scenes (one sentence a line), 동백꽃, and the bundled sample."""
    sents: list[str] = []
    for f in sorted((SHARED / "longform" / "koconovel").glob("*.text.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            sents.extend(p.strip() for p in json.loads(line)["text"].split("\n") if p.strip())
    satkorean = SHARED / "longform" / "satkorean" / "kim_yujeong_dongbaekkkot.utf8.txt"
    if satkorean.exists():
        sents.extend(p.strip() for p in satkorean.read_text(encoding="utf-8").splitlines() if p.strip())
    if SAMPLE.is_dir():
        for f in sorted(SAMPLE.glob("*.txt")):
            sents.extend(p.strip() for p in f.read_text(encoding="utf-8").splitlines() if p.strip() and "|" not in p)
    if not sents:
        sys.exit("no source text: needs ../shared/data/longform or the bundled sample")
    return sents


def make_book(rng: random.Random, sents: list[str], n: int) -> str:
    """A book shaped like a hand-marked one: paragraphs of consecutive sentences, dialogues of short turns."""
    out = [f"|START_OF_TITLE|>합성 책 {n}|END_OF_TITLE|>\n\n"]
    pos = rng.randrange(len(sents))

    def take(k: int) -> str:
        nonlocal pos
        chunk = [sents[(pos + i) % len(sents)] for i in range(k)]
        pos = (pos + k) % len(sents)
        return " ".join(chunk)

    for _ in range(rng.randint(10, 40)):
        if rng.random() < 0.3:
            out.append("|START_OF_DIALOGUE|>\n")
            for _ in range(rng.randint(2, 10)):
                cue = f"|SOUND|>({rng.choice(SOUNDS)}) " if rng.random() < 0.05 else ""
                out.append(f"{rng.choice(SPEAKERS)}: {cue}{take(rng.randint(1, 2))}\n")
            out.append("|END_OF_DIALOGUE|>\n\n")
        else:
            para = take(rng.randint(2, 6))
            if rng.random() < 0.05:
                para += f" |SOUND|>({rng.choice(SOUNDS)})"
            if rng.random() < 0.002:  # a realistic trickle of defects
                para = rng.choice(["|SOUNDS|> ", "<|sound|> ", "\u200b", unicodedata.normalize("NFD", "한")]) + para
            out.append(para + "\n\n")
    out.append("|END_OF_BOOK|>\n")
    return "".join(out)


def generate(work: Path, total_mb: int) -> list[Path]:
    corpus = work / f"corpus-v2-{total_mb}mb"
    marker = corpus / ".complete"
    if marker.exists():
        return sorted(corpus.glob("*.txt"))
    corpus.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    sents = source_sentences()
    target = total_mb << 20
    written, file_no, book_no = 0, 0, 0
    files = []
    while written < target:
        size_goal = rng.choice([256 << 10, 1 << 20, 2 << 20, 4 << 20])
        chunks, size = [], 0
        while size < size_goal:
            book = make_book(rng, sents, book_no)
            book_no += 1
            chunks.append(book)
            size += len(book.encode("utf-8"))
        path = corpus / f"part-{file_no:05d}.txt"
        path.write_text("".join(chunks), encoding="utf-8")
        files.append(path)
        written += size
        file_no += 1
    marker.touch()
    return files


def _decode_floor_one(path: str) -> bool:
    with open(path, "rb") as fh:
        text = fh.read().decode("utf-8")
    return unicodedata.is_normalized("NFC", text)


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def big_file_child(path: str) -> None:
    """Run in a child: lint one file, print peak RSS in bytes."""
    from malmungchi.corpus.lint import lint_paths
    from malmungchi.schemas.registry import default_registry

    t = time.perf_counter()
    run = lint_paths([path], default_registry(), jobs=1)
    elapsed = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": elapsed, "peak": peak, "diagnostics": len(run.diagnostics)}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--big-mb", type=int, default=500)
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "_work")
    ap.add_argument("--big-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.big_child:
        big_file_child(args.big_child)
        return
    print_machine()

    from malmungchi.corpus.lint import lint_paths
    from malmungchi.schemas.registry import default_registry

    cores = os.cpu_count() or 1
    files = generate(args.work, args.mb)
    total = sum(f.stat().st_size for f in files)
    mb = total / 1e6
    names = [str(f) for f in files]
    print(f"corpus: {len(files)} files, {mb:.1f} MB, {cores} cores")

    # warm the page cache so every contender reads from memory
    subprocess.run(["cat", *names], stdout=subprocess.DEVNULL, check=True)

    # (stdout must be a pipe: GNU grep stops at the first match when it sees its output is /dev/null)
    t_grep, _ = timed(lambda: subprocess.run(["grep", "-c", "|>", *names], stdout=subprocess.PIPE))
    t_floor1, _ = timed(lambda: [_decode_floor_one(n) for n in names])
    with ProcessPoolExecutor(cores) as pool:
        list(pool.map(_decode_floor_one, names[:cores]))  # start the workers outside the timing
        t_floorp, _ = timed(lambda: list(pool.map(_decode_floor_one, names, chunksize=4)))
    registry = default_registry()
    t_lint, run = timed(lambda: lint_paths(names, registry, jobs=cores))
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024

    rows = [
        ("malmungchi lint", t_lint),
        ("grep -c '|>' (I/O floor)", t_grep),
        ("read+decode+NFC, 1 process", t_floor1),
        (f"read+decode+NFC, {cores} processes", t_floorp),
    ]
    print(f"\n{'pass':38} {'seconds':>8} {'MB/s':>8}")
    for name, t in rows:
        print(f"{name:38} {t:8.2f} {mb / t:8.1f}")
    print(f"\nlint: {mb / t_lint:.1f} MB/s = {mb / t_lint / cores:.1f} MB/s per core; "
          f"{len(run.diagnostics)} diagnostics")
    print(f"ratio lint / grep floor:                 {t_lint / t_grep:.2f}x")
    print(f"ratio lint / decode floor (same cores):  {t_lint / t_floorp:.2f}x")
    print(f"ratio lint / decode floor (1 process):   {t_lint / t_floor1:.2f}x")
    print(f"peak RSS: main {peak_self / 1e6:.0f} MB, largest worker {peak_children / 1e6:.0f} MB")

    if args.big_mb:
        big = args.work / f"single-{args.big_mb}mb.txt"
        if not big.exists() or big.stat().st_size < args.big_mb * 1e6:
            with open(big, "wb") as out:
                size = 0
                while size < args.big_mb * 1e6:
                    for f in files:
                        data = f.read_bytes()
                        out.write(data)
                        size += len(data)
                        if size >= args.big_mb * 1e6:
                            break
        size = big.stat().st_size
        res = subprocess.run([sys.executable, __file__, "--big-child", str(big)], capture_output=True, text=True,
                             check=True)
        info = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"\nsingle file {size / 1e6:.0f} MB: {info['seconds']:.1f} s ({size / 1e6 / info['seconds']:.1f} MB/s), "
              f"peak RSS {info['peak'] / 1e6:.0f} MB = {info['peak'] / size:.2f}x the file size")


if __name__ == "__main__":
    main()
