"""The run directory, the stage 3 → 4 contract (docs/DESIGN.md): the names of its files and recognising one.

`train run` writes it (`malmungchi.train.runner`), `malmungchi.train.loader` reads it back for inference, and
`eval run` evaluates it; all of them spell its files through this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RUN_MANIFEST = "run_manifest.json"  # written last: its presence means the run finished
RUN_ADAPTER = "adapter"
RUN_TOKENIZER = "tokenizer"
RUN_METRICS = "metrics.json"
RUN_CHECKPOINTS = "checkpoints"
RUN_MERGED = "merged"
RUN_LOSS_PLOT = "loss.png"
# what a run directory holds besides its manifest (what training may have written before it was stopped)
RUN_FILES = {RUN_CHECKPOINTS, RUN_ADAPTER, RUN_TOKENIZER, RUN_MERGED, RUN_METRICS, RUN_LOSS_PLOT}


@dataclass(frozen=True)
class RunPaths:
    """Where each file of the run directory at `root` lies."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / RUN_MANIFEST

    @property
    def adapter(self) -> Path:
        return self.root / RUN_ADAPTER

    @property
    def tokenizer(self) -> Path:
        return self.root / RUN_TOKENIZER

    @property
    def metrics(self) -> Path:
        return self.root / RUN_METRICS

    @property
    def checkpoints(self) -> Path:
        return self.root / RUN_CHECKPOINTS

    @property
    def merged(self) -> Path:
        return self.root / RUN_MERGED

    @property
    def loss_plot(self) -> Path:
        return self.root / RUN_LOSS_PLOT


def is_run_dir(path: str | Path) -> bool:
    """True when `path` is a finished run directory (its manifest is there)."""
    return RunPaths(Path(path)).manifest.is_file()


def is_run_output(path: str | Path) -> bool:
    """True when `path` is a run directory, finished or still training (adapter/ and checkpoints/, no manifest
    yet)."""
    paths = RunPaths(Path(path))
    return is_run_dir(path) or (paths.adapter.is_dir() and paths.checkpoints.is_dir())
