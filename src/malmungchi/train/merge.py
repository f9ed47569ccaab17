"""`malmungchi train merge` (and `train run --merge`): a run's adapter merged into its base model, saved with the
run's tokenizer as one plain model folder that `AutoModelForCausalLM.from_pretrained` (and vLLM, SGLang) load
without peft or malmungchi.

The base is always rebuilt from disk by the run's own loader (`loader.load_for_inference`, quant="none"): the
same embedding resize and new-row initialisation as training, the adapter attached, then `merge_and_unload()`.
For a QLoRA run this means the LoRA deltas (trained against the 4-bit NF4 base) are added to the original
full-precision weights, not to their dequantized 4-bit copies: the merged model differs from the adapter run by
the base's quantization error and nothing else (the README and the test state the size of that gap).

The folder is written into a temporary sibling and renamed into place, so `--out` is either whole or absent.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from malmungchi.contracts.run import RunPaths, is_run_dir
from malmungchi.outdir import overlap_problem, remove_stale_temporaries, staged, swap_in
from malmungchi.train.errors import TrainError

DTYPES = ("auto", "float32", "bfloat16", "float16")


def out_problem(run_dir: Path, out: Path) -> str | None:
    """Why `--out` may not be written for `run_dir`, or None. RUN_DIR/merged (the run contract's place for it) is
    allowed; anywhere else inside the run, or around it, is not."""
    own = out.resolve() == RunPaths(run_dir).merged.resolve()
    if out.exists() or out.is_symlink():
        if own:  # `train run --merge`'s place: the user named no --out
            return (f"{out}: already exists (an earlier merge of this run); remove it to merge again, or merge into "
                    f"a new folder with `malmungchi train merge {run_dir} --out DIR`")
        return f"--out {out}: already exists; choose a new folder (or remove that one yourself)"
    return None if own else overlap_problem(out, [run_dir])


def check_run(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise TrainError(f"{run_dir}: no such run directory")
    if not is_run_dir(run_dir):
        raise TrainError(f"{run_dir}: not a finished run directory (no {RunPaths(run_dir).manifest.name}); pass "
                         "the --out folder of `malmungchi train run`")


def merge_run(run_dir: str | Path, out: str | Path, *, dtype: str | None = None, device: str = "cpu",
              base_model: str | None = None) -> dict[str, Any]:
    """Merge the run's adapter into its base (loaded unquantized, in `dtype`, default the run's) and write `out`.
    Returns what was done (for the CLI's line and the run manifest)."""
    from malmungchi.train.loader import load_for_inference

    run, out = Path(run_dir), Path(out)
    check_run(run)
    problem = out_problem(run, out)
    if problem:
        raise TrainError(problem)
    model, tokenizer, manifest = load_for_inference(run, base_model=base_model, quant="none", dtype=dtype,
                                                    device_map={"": device})
    merged = model.merge_and_unload()
    merged.config.use_cache = True  # training turned it off for packed rows; generation wants it
    save_model_folder(merged, RunPaths(run).tokenizer, out, problem=lambda: out_problem(run, out))
    return {"out": str(out), "dtype": str(merged.dtype).removeprefix("torch."),
            "quantization_trained": manifest.get("quantization", "none"),
            "rows": int(merged.get_input_embeddings().weight.shape[0])}


def save_model_folder(model, tokenizer_dir: Path, out: Path, problem=lambda: None) -> None:
    """`model.save_pretrained` (safetensors) and the tokenizer's files into a temporary folder beside `out`, then
    one rename (`malmungchi.outdir`: what a killed merge left there is removed first). `problem()`, the refusal of
    `out`, is asked again once the folder is written: another process may have made `out` meanwhile (an empty
    folder too, which a rename would silently replace)."""
    remove_stale_temporaries(out)
    with staged(out) as tmp:
        model.save_pretrained(str(tmp))
        for f in sorted(tokenizer_dir.iterdir()):
            if f.is_file():
                shutil.copy2(f, tmp / f.name)
        line = problem()
        if line:
            raise TrainError(line)
        if not swap_in(tmp, out, replace=False):
            raise TrainError(f"--out {out}: already exists (written by another process meanwhile); choose a new "
                             "folder")
