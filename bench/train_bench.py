"""Packed padding-free rows vs. trl's default unpacked, padded batches: real (non-pad) tokens per second.

Same tiny-but-not-trivial Llama-style model (random weights, same seed), same LoRA, same documents, same number of
real tokens (one epoch over the same documents), same per-device batch size:

* packed:  the build's layout: documents packed first-fit into rows of `--row-len` tokens, collated by
           `malmungchi.train.collate.PackedCollator` (position_ids, no attention_mask; documents kept apart),
           trained by `malmungchi.train.progress.PackedSFTTrainer`;
* padded:  one document per example, trl's SFTTrainer with its default collator (padding + attention_mask).

Documents: KoCoNovel scenes from ../shared/data (beside the checkout) (tokenized with the real Qwen3 tokenizer; token ids are
renumbered into the compact set actually used, so the LM head stays small and the comparison is about the
transformer, not a 151k-row softmax).

    python bench/train_bench.py [--docs 300] [--row-len 512] [--batch-size 8] [--hidden 256] [--layers 4]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import warnings
from pathlib import Path

from machine import print_machine  # bench/machine.py: what this ran on

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"  # the shared data beside the checkout (../shared/data)


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
    return AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="sdpa")


def lora():
    from peft import LoraConfig

    return LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")


def sft_args(out, args, **kw):
    from trl import SFTConfig

    return SFTConfig(output_dir=str(out), num_train_epochs=1, per_device_train_batch_size=args.batch_size,
                     learning_rate=2e-4, logging_steps=10_000, save_strategy="no", report_to="none",
                     disable_tqdm=True, use_cpu=True, bf16=False, activation_checkpointing=False, seed=0,
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
    t0 = time.perf_counter()
    trainer.train()
    dt = time.perf_counter() - t0
    return {"rows": len(rows), "steps": trainer.state.global_step, "seconds": dt, "real_tokens": trainer.real_tokens}


def run_padded(docs, vocab, pad_id, args, tmp):
    import datasets
    from trl import SFTTrainer

    ds = datasets.Dataset.from_dict({"input_ids": docs})
    trainer = SFTTrainer(model=make_model(vocab, args), args=sft_args(tmp / "padded", args, max_length=None),
                         train_dataset=ds, processing_class=tokenizer_stub(vocab, pad_id), peft_config=lora())
    t0 = time.perf_counter()
    trainer.train()
    dt = time.perf_counter() - t0
    return {"rows": len(docs), "steps": trainer.state.global_step, "seconds": dt,
            "real_tokens": sum(map(len, docs))}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--novel-docs", type=int, default=40, help="book chunks (KoCoNovel scenes)")
    ap.add_argument("--dialogue-docs", type=int, default=600, help="short dialogues (ChatbotData pairs)")
    ap.add_argument("--row-len", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.hidden % 64:
        ap.error("--hidden must be a multiple of 64 (bitsandbytes' 4-bit CPU path repacks in blocks of 64 inputs)")
    warnings.filterwarnings("ignore")
    from malmungchi.quiet import quiet_third_party_logs

    quiet_third_party_logs()
    print_machine()
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    docs, vocab, pad_id = load_docs(args.novel_docs, args.dialogue_docs, args.row_len, args.seed)
    total = sum(map(len, docs))
    lengths = sorted(map(len, docs))
    print(f"{len(docs)} documents, {total:,} real tokens (length min {lengths[0]}, median "
          f"{lengths[len(lengths) // 2]}, max {lengths[-1]}); compact vocabulary {vocab:,}; model hidden "
          f"{args.hidden}, {args.layers} layers; batch size {args.batch_size}, row length {args.row_len}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        warm = docs[:2 * args.batch_size]  # first-call costs (lazy imports, allocator) out of the timings
        run_padded(warm, vocab, pad_id, args, tmp / "warm")
        run_packed(warm, vocab, pad_id, args, tmp / "warm")
        padded = run_padded(docs, vocab, pad_id, args, tmp)
        packed = run_packed(docs, vocab, pad_id, args, tmp)
    assert packed["real_tokens"] == padded["real_tokens"] == total, (packed, padded)
    tp = packed["real_tokens"] / packed["seconds"]
    td = padded["real_tokens"] / padded["seconds"]
    print(f"padded (trl default, one document per example): {padded['steps']} steps, {padded['seconds']:.1f} s, "
          f"{td:,.0f} real tokens/s")
    print(f"packed (malmungchi, padding-free rows):          {packed['steps']} steps, {packed['seconds']:.1f} s, "
          f"{tp:,.0f} real tokens/s")
    print(f"ratio packed / padded: {tp / td:.2f}x")


if __name__ == "__main__":
    main()
