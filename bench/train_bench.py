"""Ours (packed rows kept apart) vs. trl at its best settings and at its default: real (non-pad) tokens per second.

Same tiny-but-not-trivial Llama-style model (random weights, same seed), same LoRA, same documents, same number of
real tokens (one epoch over the same documents), each method in its own process (so its peak memory is its own),
one after the other:

* ours:             the build's layout: documents packed first-fit into rows of `--row-len` tokens, collated by
                    `malmungchi.train.collate.PackedCollator` (position_ids, no attention_mask; documents kept
                    apart), trained by `malmungchi.train.progress.PackedSFTTrainer`; `--batch-size` rows a step;
* trl-padding-free: the same rows and order, trl's SFTTrainer with `padding_free=True` and its own collator
                    (a batch flattened into one sequence, position_ids from each row's `seq_lengths`: documents
                    kept apart too, but attention over the flattened batch);
* trl-bfd:          trl's own packing from the documents (`packing=True`, `packing_strategy="bfd"`, max_length
                    = `--row-len`, padding-free as trl does it), the same batch size in rows;
* trl-padded:       trl's default: one document per example, padding + attention_mask, `--batch-size` documents.

The last line is `ratio ours / trl-padding-free: X.XXx` (trl's best padding-free setting on the same rows).

Documents: KoCoNovel scenes from ../shared/data (beside the checkout) (tokenized with the real Qwen3 tokenizer; token ids are
renumbered into the compact set actually used, so the LM head stays small and the comparison is about the
transformer, not a 151k-row softmax).

    python bench/train_bench.py [--docs 300] [--row-len 512] [--batch-size 8] [--hidden 256] [--layers 4]

On a GPU (CUDA): the same bench in bf16, with the attention kernel and Liger kernels asked for, on a ~100M-parameter
model (hidden 1024, 10 layers: ~99M parameters with a 12k compact vocabulary; the header prints the count):

    python bench/train_bench.py --device cuda --hidden 1024 --layers 10 --heads 16 --attn sdpa
    python bench/train_bench.py --device cuda --hidden 1024 --layers 10 --heads 16 --attn flash_attention_2 --liger

(`--dtype` defaults to bfloat16 on CUDA and float32 on the CPU; flash-attention needs the `flash_attn` package,
Liger the `liger_kernel` package; every method gets the same settings.)
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import warnings
from pathlib import Path

from machine import print_machine, shared_data  # bench/machine.py: what this ran on, and the data

ROOT = Path(__file__).resolve().parents[1]
DATA = shared_data()  # ../shared/data beside the checkout, or shared/data on a device machine


def load_docs(n_novel: int, n_dialogue: int, max_len: int, seed: int):
    """Book chunks (KoCoNovel scenes, cut to the row length as the build cuts books) and short dialogues
    (ChatbotData Q/A pairs): the mix this tool trains on."""
    import csv

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(DATA / "tokenizers" / "qwen3"))
    rng = random.Random(seed)
    scenes = []
    for f in sorted((DATA / "longform" / "koconovel").glob("*.text.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                scenes.append(json.loads(line)["text"])
    rng.shuffle(scenes)
    with open(DATA / "dialogue" / "chatbot_data" / "ChatbotData.csv", encoding="utf-8") as fh:
        pairs = [f"{r['Q']}\n{r['A']}" for r in csv.DictReader(fh)]
    rng.shuffle(pairs)
    docs = []
    for text in scenes[:n_novel] + pairs[:n_dialogue]:
        ids = tok.encode(text, add_special_tokens=False)[: max_len - 1] + [tok.eos_token_id]
        docs.append(ids)
    rng.shuffle(docs)
    used = sorted({i for d in docs for i in d} | {tok.pad_token_id})
    remap = {old: new for new, old in enumerate(used)}
    return [[remap[i] for i in d] for d in docs], len(used), remap[tok.pad_token_id]


def pack(docs, row_len):
    rows = []
    for d in sorted(docs, key=len, reverse=True):  # first-fit decreasing, as a build would
        for row in rows:
            if sum(map(len, row)) + len(d) <= row_len:
                row.append(d)
                break
        else:
            rows.append([d])
    random.Random(0).shuffle(rows)
    return rows


def make_model(vocab, args):
    import torch
    from transformers import AutoModelForCausalLM

    from malmungchi.train.tiny import tiny_llama_config

    cfg = tiny_llama_config(vocab, hidden_size=args.hidden, layers=args.layers, heads=args.heads, kv_heads=2,
                            intermediate_size=2 * args.hidden, max_position_embeddings=max(2048, args.row_len))
    cfg.use_cache = False
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(cfg, dtype=getattr(torch, args.dtype), attn_implementation=args.attn)


def lora():
    from peft import LoraConfig

    return LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")


def sft_args(out, args, **kw):
    from trl import SFTConfig

    return SFTConfig(output_dir=str(out), num_train_epochs=1, per_device_train_batch_size=args.batch_size,
                     learning_rate=2e-4, logging_steps=10_000, save_strategy="no", report_to="none",
                     disable_tqdm=True, use_cpu=args.device == "cpu", bf16=args.dtype == "bfloat16",
                     use_liger_kernel=args.liger, activation_checkpointing=False, seed=0,
                     dataloader_pin_memory=False, **kw)


def tokenizer_stub(vocab, pad_id):
    """A minimal tokenizer object for SFTTrainer's processing_class (the data are already token ids)."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    words = {f"t{i}": i for i in range(vocab)}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(words, unk_token="t0")))
    tok.pad_token = f"t{pad_id}"
    tok.eos_token = f"t{pad_id}"
    return tok


def run_packed(docs, vocab, pad_id, args, tmp):
    import datasets
    from peft import get_peft_model

    from malmungchi.train.collate import PackedCollator
    from malmungchi.train.progress import PackedSFTTrainer

    rows = pack(docs, args.row_len)
    ds = datasets.Dataset.from_dict({
        "input_ids": [[i for d in r for i in d] for r in rows],
        "assistant_masks": [[1] * sum(map(len, r)) for r in rows],
        "position_ids": [[k for d in r for k in range(len(d))] for r in rows],
        "seq_lengths": [[len(d) for d in r] for r in rows],
        "doc_ids": [[str(j) for j in range(len(r))] for r in rows],
    })
    model = get_peft_model(make_model(vocab, args), lora())
    trainer = PackedSFTTrainer(model=model, args=sft_args(tmp / "packed", args, remove_unused_columns=False,
                                                          dataset_kwargs={"skip_prepare_dataset": True},
                                                          max_length=None),
                               data_collator=PackedCollator(pad_token_id=pad_id), train_dataset=ds,
                               processing_class=tokenizer_stub(vocab, pad_id))
    out = _timed(trainer, 0, len(rows))
    out["real_tokens"] = trainer.real_tokens
    return out


def run_padded(docs, vocab, pad_id, args, tmp):
    import datasets
    from trl import SFTTrainer

    ds = datasets.Dataset.from_dict({"input_ids": docs})
    trainer = SFTTrainer(model=make_model(vocab, args), args=sft_args(tmp / "padded", args, max_length=None),
                         train_dataset=ds, processing_class=tokenizer_stub(vocab, pad_id), peft_config=lora())
    return _timed(trainer, sum(map(len, docs)), len(docs))


def run_trl_padding_free(docs, vocab, pad_id, args, tmp):
    """Our rows (the same packing and order), trl's padding-free collator."""
    import datasets
    from trl import SFTTrainer

    rows = pack(docs, args.row_len)
    ds = datasets.Dataset.from_dict({"input_ids": [[i for d in r for i in d] for r in rows],
                                     "seq_lengths": [[len(d) for d in r] for r in rows]})
    trainer = SFTTrainer(model=make_model(vocab, args),
                         args=sft_args(tmp / "pf", args, padding_free=True, max_length=None,
                                       dataset_kwargs={"skip_prepare_dataset": True}),
                         train_dataset=ds, processing_class=tokenizer_stub(vocab, pad_id), peft_config=lora())
    return _timed(trainer, sum(map(len, docs)), len(rows))


def run_trl_bfd(docs, vocab, pad_id, args, tmp):
    """trl packs the documents itself (best-fit decreasing), padding-free."""
    import datasets
    from trl import SFTTrainer

    ds = datasets.Dataset.from_dict({"input_ids": docs})
    trainer = SFTTrainer(model=make_model(vocab, args),
                         args=sft_args(tmp / "bfd", args, packing=True, packing_strategy="bfd", max_length=args.row_len),
                         train_dataset=ds, processing_class=tokenizer_stub(vocab, pad_id), peft_config=lora())
    real = sum(len(x) for x in trainer.train_dataset["input_ids"])
    return _timed(trainer, real, len(trainer.train_dataset))


def _timed(trainer, real_tokens: int, rows: int) -> dict:
    import torch

    t0 = time.perf_counter()
    trainer.train()
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # the last step's kernels are in the time
    dt = time.perf_counter() - t0
    return {"rows": rows, "steps": trainer.state.global_step, "seconds": dt, "real_tokens": real_tokens}


RUNS = {"ours": run_packed, "trl-padding-free": run_trl_padding_free, "trl-bfd": run_trl_bfd,
        "trl-padded": run_padded}


def worker(method: str, data: str, args) -> dict:
    """One method in this (fresh) process: a warm-up on a few documents, then the timed run, and its peak memory."""
    import resource

    import torch

    payload = json.loads(Path(data).read_text())
    docs, vocab, pad_id = payload["docs"], payload["vocab"], payload["pad_id"]
    torch.set_num_threads(torch.get_num_threads())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        RUNS[method](docs[:2 * args.batch_size], vocab, pad_id, args, tmp / "warm")  # lazy imports, allocator
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        out = RUNS[method](docs, vocab, pad_id, args, tmp)
    out["peak_mb"] = (torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available()
                      else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def _settle_device(ap, args) -> None:
    """`--device` and `--dtype` from `auto`, and a usage error for a setting this machine cannot run."""
    import importlib.util

    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: this torch sees no CUDA device")
    if args.dtype == "auto":
        args.dtype = "bfloat16" if args.device == "cuda" else "float32"
    if args.attn == "flash_attention_2":
        if args.device != "cuda" or args.dtype != "bfloat16":
            ap.error("--attn flash_attention_2 needs --device cuda and bfloat16")
        if importlib.util.find_spec("flash_attn") is None:
            ap.error("--attn flash_attention_2 needs the flash_attn package (pip install flash-attn)")
    if args.liger and importlib.util.find_spec("liger_kernel") is None:
        ap.error("--liger needs the liger_kernel package (pip install liger-kernel)")


def main():
    import subprocess
    import sys

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--novel-docs", type=int, default=40, help="book chunks (KoCoNovel scenes)")
    ap.add_argument("--dialogue-docs", type=int, default=600, help="short dialogues (ChatbotData pairs)")
    ap.add_argument("--row-len", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: cuda when there is one")
    ap.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                    help="auto: bfloat16 on cuda, float32 on the cpu")
    ap.add_argument("--attn", choices=("sdpa", "flash_attention_2", "eager"), default="sdpa",
                    help="attention implementation of every method's model")
    ap.add_argument("--liger", action="store_true", help="Liger kernels (use_liger_kernel) for every method")
    ap.add_argument("--methods", default=",".join(RUNS), help="comma-separated subset of " + ",".join(RUNS))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.hidden % 64:
        ap.error("--hidden must be a multiple of 64 (bitsandbytes' 4-bit CPU path repacks in blocks of 64 inputs)")
    _settle_device(ap, args)
    warnings.filterwarnings("ignore")
    from malmungchi.quiet import quiet_third_party_logs

    quiet_third_party_logs()
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if args.worker:
        print(json.dumps(worker(args.worker, args.data, args)))
        return
    print_machine()
    docs, vocab, pad_id = load_docs(args.novel_docs, args.dialogue_docs, args.row_len, args.seed)
    total = sum(map(len, docs))
    lengths = sorted(map(len, docs))
    params = sum(x.numel() for x in make_model(vocab, args).parameters())
    print(f"{len(docs)} documents, {total:,} real tokens (length min {lengths[0]}, median "
          f"{lengths[len(lengths) // 2]}, max {lengths[-1]}); compact vocabulary {vocab:,}; model hidden "
          f"{args.hidden}, {args.layers} layers, {params / 1e6:.1f}M parameters; batch size {args.batch_size}, "
          f"row length {args.row_len}; {args.device}, {args.dtype}, attention {args.attn}"
          f"{', Liger kernels' if args.liger else ''}")
    methods = [m for m in args.methods.split(",") if m]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "docs.json"
        data.write_text(json.dumps({"docs": docs, "vocab": vocab, "pad_id": pad_id}))
        argv = sys.argv[1:]  # the workers get every option but --methods (`--methods X` or `--methods=X`)
        passed = [a for i, a in enumerate(argv) if not a.startswith("--methods")
                  and not (i and argv[i - 1] == "--methods")]
        for m in methods:
            proc = subprocess.run([sys.executable, __file__, *passed, "--worker", m, "--data", str(data)],
                                  capture_output=True, text=True)
            if proc.returncode:
                raise SystemExit(f"{m} failed:\n{proc.stderr[-3000:]}")
            results[m] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{'method':18} {'steps':>6} {'seconds':>8} {'real tokens/s':>14} {'peak MB':>8}")
    for m, r in results.items():
        print(f"{m:18} {r['steps']:>6} {r['seconds']:>8.1f} {r['real_tokens'] / r['seconds']:>14,.0f} "
              f"{r['peak_mb']:>8,.0f}")
    speed = {m: r["real_tokens"] / r["seconds"] for m, r in results.items()}
    for m, r in results.items():
        if m != "trl-bfd" and r["real_tokens"] != total:  # trl's BFD truncates nothing here (rows >= documents)
            raise SystemExit(f"{m} trained {r['real_tokens']} real tokens, not {total}")
    if "ours" in speed:
        for m in speed:
            if m != "ours" and m != "trl-padding-free":
                print(f"ratio ours / {m}: {speed['ours'] / speed[m]:.2f}x")
        if "trl-padding-free" in speed:
            print(f"ratio ours / trl-padding-free: {speed['ours'] / speed['trl-padding-free']:.2f}x")


if __name__ == "__main__":
    main()
