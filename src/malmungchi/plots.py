"""PNG plots: matplotlib without a display, Hangul drawn where a Korean font is installed, saved atomically and
byte-for-byte reproducibly."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from malmungchi.atomic import write_bytes

# fonts with Hangul, tried after matplotlib's own (which has none) for the characters it lacks
KOREAN_FONTS = ("Noto Sans CJK KR", "Noto Sans KR", "NanumGothic", "Nanum Gothic", "Malgun Gothic", "AppleGothic",
                "UnDotum", "Baekmuk Gulim")


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed; imported only where a plot is made), falling back
    to an installed Korean font for Hangul in titles and labels (a run folder or results file named in Korean)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    matplotlib.rcParams["font.family"] = ["DejaVu Sans", *(f for f in KOREAN_FONTS if f in installed)]
    # without one, Hangul shows as boxes, silently: not a warning per glyph (layout and drawing each warn)
    warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from", category=UserWarning)
    return plt


def save_png(fig, path: Path, dpi: int = 110) -> None:
    """`fig` as a PNG at `path` (`atomic.write_bytes`: a reader never sees half a file, a killed writer's temporary
    is cleaned up), without matplotlib's version stamp: the same data give the same bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    write_bytes(path, buf.getvalue())
