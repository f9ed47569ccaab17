"""Benchmark: `eval run`'s batched generation against a per-item `transformers.pipeline` loop and the served
backend (`--backend openai`) against a local OpenAI-compatible server on the same model.

Both paths use the same tiny random Llama model (built from a config with the real Qwen3 tokenizer shipped in
tests/fixtures; nothing is downloaded), the same prompts, greedy decoding and the same `max_new_tokens`. An
untrained model almost never emits EOS, so every item generates exactly `max_new_tokens` tokens on both paths
and the comparison is like for like. The script also reports how many outputs agree between the paths.

The server is the tests' one (tests/openai_server.py: stdlib HTTP, one `generate` per request under a lock), not
vLLM: it generates item by item like (b), so (c) against (b) is the cost of the HTTP client, the JSON and the
results file, and (c) against (a) what a server without batching loses. A real server batches the concurrent
requests itself (continuous batching), which is the point of `--concurrency`.

    python bench/eval_bench.py [--n 64] [--batch-size 16] [--max-new-tokens 32] [--layers 4] [--hidden 128]
                               [--threads N] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
import tempfile
import time
from pathlib import Path

from machine import print_machine  # bench/machine.py: what this ran on

ROOT = Path(__file__).resolve().parent.parent
TOKENIZER = ROOT / "tests" / "fixtures" / "tokenizers" / "qwen3"

SUBJECTS = ["한국의 수도", "사과의 색", "바다의 맛", "겨울의 날씨", "할머니의 이야기", "학교 가는 길", "도서관의 규칙",
            "김치 담그는 법"]
FRAMES = [
    "질문: {s}는 무엇인가요?\n답:",
    "다음 문장을 이어 쓰세요. {s}에 대해 이야기하자면,",
    "{s}",
    "아래 글을 읽고 물음에 답하세요.\n옛날 옛적에 작은 마을에 한 소년이 살았습니다. 소년은 매일 아침 {s}에 대해 생각했습니다."
    " 어느 날 소년은 길을 떠났습니다.\n물음: 소년은 무엇을 생각했나요?\n답:",
]


def prompts(n: int) -> list[str]:
    out = []
    for i in range(n):
        out.append(FRAMES[i % len(FRAMES)].format(s=SUBJECTS[(i // len(FRAMES)) % len(SUBJECTS)]) + " " * (i // 32))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--threads", type=int, default=0, help="torch threads for every path (0: torch's default)")
    ap.add_argument("--concurrency", type=int, default=8, help="requests in flight for the served backend")
    args = ap.parse_args()
    if args.hidden % 64:
        ap.error("--hidden must be a multiple of 64 (bitsandbytes' 4-bit CPU path repacks in blocks of 64 inputs)")
    from malmungchi.quiet import quiet_third_party_logs

    quiet_third_party_logs()
    print_machine()

    import torch
    import transformers
    from transformers import AutoTokenizer, pipeline

    from malmungchi.eval.generate import GenerationSettings, encode, ensure_pad_token, generate_all
    from malmungchi.eval.load import load
    from malmungchi.train.tiny import make_tiny_model

    if args.threads:
        torch.set_num_threads(args.threads)
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory(prefix="malmungchi-bench-") as tmp:
        tok_dir = Path(tmp) / "tokenizer"
        tok_dir.mkdir()
        with gzip.open(TOKENIZER / "tokenizer.json.gz", "rb") as fin, open(tok_dir / "tokenizer.json", "wb") as fout:
            shutil.copyfileobj(fin, fout)
        shutil.copy(TOKENIZER / "tokenizer_config.json", tok_dir / "tokenizer_config.json")
        tokenizer = AutoTokenizer.from_pretrained(tok_dir)
        model_dir = make_tiny_model(Path(tmp) / "model", tokenizer, hidden_size=args.hidden, layers=args.layers,
                                    intermediate_size=4 * args.hidden)
        loaded = load(model_dir, device="cpu")
        model, tok = loaded.model, loaded.tokenizer
        texts = prompts(args.n)
        settings = GenerationSettings(max_new_tokens=args.max_new_tokens)

        # (a) the eval path: one tokenizer call, length-sorted left-padded batches
        ensure_pad_token(tok)
        generate_all(model, tok, encode(tok, texts[:2], [False, False]), settings, batch_size=2)  # warm-up
        t0 = time.perf_counter()
        ids = encode(tok, texts, [False] * len(texts))
        ours = generate_all(model, tok, ids, settings, batch_size=args.batch_size)
        t_ours = time.perf_counter() - t0

        # (b) the usual per-item pipeline loop, same greedy settings and length
        pipe = pipeline("text-generation", model=model, tokenizer=tok, device=model.device)
        gen_kwargs = dict(max_new_tokens=args.max_new_tokens, do_sample=False, return_full_text=False)
        pipe(texts[0], **gen_kwargs)  # warm-up
        t0 = time.perf_counter()
        theirs = [pipe(text, **gen_kwargs)[0]["generated_text"] for text in texts]
        t_pipe = time.perf_counter() - t0

        # (c) the served backend: eval run --backend openai against a local server on the same model
        t_served, served = served_path(model, tok, texts, settings, Path(tmp), args.concurrency, args.batch_size)

    same = sum(a.text == b for a, b in zip(ours, theirs))
    same_served = sum(a.text == b for a, b in zip(ours, served))
    tokens = sum(g.new_tokens for g in ours)
    print(f"model: Llama, {args.layers} layers, hidden {args.hidden}, vocab {len(tok)}; torch {torch.__version__}, "
          f"transformers {transformers.__version__}, {torch.get_num_threads()} threads, device {model.device}")
    print(f"items: {args.n}, max_new_tokens: {args.max_new_tokens}, greedy; generated tokens (ours): {tokens}")
    print(f"(a) batched eval path, batch {args.batch_size}: {t_ours:7.2f} s  {args.n / t_ours:8.2f} items/s")
    print(f"(b) pipeline, one call per item:      {t_pipe:7.2f} s  {args.n / t_pipe:8.2f} items/s")
    print(f"(c) served backend, {args.concurrency} in flight:  {t_served:7.2f} s  {args.n / t_served:8.2f} items/s")
    print(f"speed-up (a) over (b): {t_pipe / t_ours:.1f}x   identical outputs: {same}/{args.n}")
    print(f"(c) / (b) time: {t_served / t_pipe:.2f}   (c) / (a) time: {t_served / t_ours:.2f}   "
          f"identical outputs (c) vs (a): {same_served}/{args.n}")
    return 0


def served_path(model, tok, texts, settings, tmp: Path, concurrency: int, batch_size: int):
    """Time `run_plan` with the served backend over the tests' OpenAI-compatible server (warm-up excluded)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from openai_server import OpenAIServer, TinyModelResponder

    from malmungchi.eval.records import GoldItem
    from malmungchi.eval.run import run_plan
    from malmungchi.eval.served import ServedClient
    from malmungchi.eval.served_run import served_plan

    gold = [GoldItem(f"b{i}", f"b{i}", ("-",), prompt=t, line=i + 1) for i, t in enumerate(texts)]
    with OpenAIServer(TinyModelResponder(model, tok)) as server, ServedClient(server.url, concurrency=concurrency) \
            as client:
        run_plan(served_plan(client, "tiny", gold[:2], tmp / "warm.jsonl", settings), gold[:2], tmp / "warm.jsonl")
        t0 = time.perf_counter()
        out = tmp / "served.jsonl"
        plan = served_plan(client, "tiny", gold, out, settings, concurrency=concurrency, batch_size=batch_size)
        outcome = run_plan(plan, gold, out)
        elapsed = time.perf_counter() - t0
    return elapsed, [s.prediction for s in outcome.scored]


if __name__ == "__main__":
    sys.exit(main())
