"""`RUN_DIR/loss.png`: the training loss by step (the steps logged before a `--resume` drawn apart, from the
checkpoint's log) and the validation loss where it was measured, from the run's `metrics.json` contents."""

from __future__ import annotations

import math
from pathlib import Path

from malmungchi.plots import pyplot, save_png


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def write_loss_plot(metrics: dict, path: Path, title: str) -> bool:
    """Plot `metrics` (`loss_curve`: [{step, loss, before_resume?}], `eval`: [{step, eval_loss}]) to `path`; False
    (nothing written, an earlier plot removed) when no loss was logged (fewer steps than `logging_steps`). A loss
    that is NaN or infinite (a run that diverged) cannot be drawn: the steps where it was are marked and counted in
    the title, not left out silently."""
    logged = [p for p in metrics.get("loss_curve") or [] if p.get("loss") is not None]
    evals = [p for p in metrics.get("eval") or [] if p.get("eval_loss") is not None]
    if not logged and not evals:
        path.unlink(missing_ok=True)
        return False
    curve = [p for p in logged if _finite(p["loss"])]
    bad = [p["step"] for p in logged if not _finite(p["loss"])] + \
        [p["step"] for p in evals if not _finite(p["eval_loss"])]
    evals = [p for p in evals if _finite(p["eval_loss"])]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    before = [p for p in curve if p.get("before_resume")]
    after = [p for p in curve if not p.get("before_resume")]
    if before:
        ax.plot([p["step"] for p in before], [p["loss"] for p in before], color="C0", alpha=0.45, ls="--",
                marker="." if len(before) < 3 else None, label="training (before --resume)")
    if after:
        joined = before[-1:] + after  # the resumed curve goes on from where the checkpoint's left off
        ax.plot([p["step"] for p in joined], [p["loss"] for p in joined], color="C0", label="training",
                marker="." if len(after) < 3 else None)
    if evals:
        ax.plot([p["step"] for p in evals], [p["eval_loss"] for p in evals], color="C1", marker="o", ls=":",
                label="validation")
    for k, step in enumerate(bad):
        ax.axvline(step, color="C3", lw=0.8, alpha=0.7, label="loss NaN or infinite" if k == 0 else None)
    if bad:
        title += f" ({len(bad)} loss{'es' * (len(bad) > 1)} NaN or infinite)"
    ax.set_xlabel("step")
    ax.set_ylabel("loss (mean per loss token)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)
    return True
