"""The files a run directory holds while and after training: which adapter folders and trainer checkpoints are
whole, so that a run killed at any moment (before its first checkpoint, in the middle of saving one) can go on.

The trainer writes a checkpoint's `trainer_state.json` last, after the adapter, optimizer and RNG files; a
checkpoint counts as whole when that file parses and its adapter weights are readable. A kill in the middle of a
save leaves the newest checkpoint torn: `--resume` then takes the one before it.
"""

from __future__ import annotations

import json
from pathlib import Path

from malmungchi.contracts.run import RUN_FILES
from malmungchi.train.errors import RunMismatchError


ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


def check_adapter(adapter: Path) -> None:
    """One line naming the file when the adapter folder cannot be what training wrote: its config missing or not
    JSON, its weights missing, empty or not a readable safetensors file. Without this, a missing weights file
    sends peft to the Hub (a lookup error that points the wrong way) and a torn one ends in a traceback."""
    config = adapter / "adapter_config.json"
    if not config.is_file():
        raise RunMismatchError(f"{config}: missing (the run did not finish? train it again or --resume it)")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise RunMismatchError(f"{config}: not UTF-8 text; the file is damaged (train the run again)") from None
    except ValueError as exc:
        raise RunMismatchError(f"{config}: not valid JSON ({exc}); the file is damaged (train the run again)") \
            from None
    if not isinstance(data, dict):
        raise RunMismatchError(f"{config}: a JSON {type(data).__name__}, not an adapter config object")
    weights = next((adapter / n for n in ADAPTER_WEIGHTS if (adapter / n).is_file()), None)
    if weights is None:
        raise RunMismatchError(f"{adapter / ADAPTER_WEIGHTS[0]}: missing; the adapter's weights are gone "
                               "(train the run again)")
    if weights.stat().st_size == 0:
        raise RunMismatchError(f"{weights}: empty (0 bytes); the file is damaged (train the run again)")
    if weights.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(weights), framework="pt"):
                pass  # opening checks the header and that the tensors' offsets cover the file exactly
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error type for every defect
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RunMismatchError(f"{weights}: not a readable safetensors file ({first}); truncated or damaged "
                                   "(train the run again)") from None


def checkpoint_step(ckpt: Path) -> int:
    """N of a `checkpoint-N` folder (-1 for any other name)."""
    tail = ckpt.name.split("-")[-1]
    return int(tail) if tail.isdigit() else -1


def complete_checkpoints(folder: Path) -> list[Path]:
    """The whole checkpoints under `folder` (`checkpoint-N`), newest first."""
    found = [d for d in folder.glob("checkpoint-*") if checkpoint_step(d) >= 0 and _whole(d)] \
        if folder.is_dir() else []
    return sorted(found, key=checkpoint_step, reverse=True)


def _whole(ckpt: Path) -> bool:
    try:
        state = json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
        check_adapter(ckpt)
    except (OSError, ValueError, RunMismatchError):
        return False
    return isinstance(state, dict) and "global_step" in state


def only_run_files(out: Path) -> bool:
    """True when `out` holds nothing but what training writes (so starting over there loses nothing else)."""
    return all(p.name in RUN_FILES for p in out.iterdir())
