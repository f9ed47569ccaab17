"""PNG plots: matplotlib without a display, saved atomically and byte-for-byte reproducibly."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed; imported only where a plot is made)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path, dpi: int = 110) -> None:
    """`fig` as a PNG at `path`, written beside it and renamed over it (a reader never sees half a file), without
    matplotlib's version stamp: the same data give the same bytes."""
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=dpi, metadata={"Software": None})
    tmp.replace(path)
