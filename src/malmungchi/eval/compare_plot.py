"""`eval compare --plot FILE.png`: A and B side by side per metric, and B − A with its paired bootstrap interval
(green or red where the interval leaves zero out), for a person who would rather look than read the table."""

from __future__ import annotations

from pathlib import Path

from malmungchi.eval.compare import HEADLINE, Comparison
from malmungchi.plots import pyplot, save_png


def _names(a: str, b: str) -> tuple[str, str]:
    """The shortest path endings that tell `a` from `b` (runA/results.jsonl, runB/results.jsonl)."""
    pa, pb = Path(a).parts, Path(b).parts
    for k in range(1, max(len(pa), len(pb)) + 1):
        x, y = "/".join(pa[-k:]), "/".join(pb[-k:])
        if x != y:
            return x, y
    return a, b


def write_compare_plot(c: Comparison, path: Path) -> None:
    plt = pyplot()
    names = _names(str(c.a.path), str(c.b.path))
    metrics = list(c.tiers)
    level = int(round(100 * c.confidence))
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    xs = range(len(metrics))
    for k, (name, shown) in enumerate(zip("AB", names)):
        vals = [100 * c.tiers[m][name.lower()] for m in metrics]
        ax.bar([x + (k - 0.5) * 0.38 for x in xs], vals, width=0.38, color=f"C{k}", label=f"{name} = {shown}")
    ax.set_xticks(list(xs), metrics, fontsize=8)
    ax.set_ylabel("score (%)")
    ax.set_ylim(0, 122)  # room above 100% for the legend
    ax.set_title(f"{len(c.paired)} paired items", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", ncol=2)
    diffs = [100 * c.tiers[m]["diff"] for m in metrics]
    lo = [d - 100 * c.tiers[m]["ci_low"] for d, m in zip(diffs, metrics)]
    hi = [100 * c.tiers[m]["ci_high"] - d for d, m in zip(diffs, metrics)]
    for x, m, d, l, h in zip(xs, metrics, diffs, lo, hi):
        t = c.tiers[m]
        color = ("C2" if d > 0 else "C3") if t["ci_low"] > 0 or t["ci_high"] < 0 else "grey"
        bx.errorbar([x], [d], yerr=[[l], [h]], fmt="o", capsize=6, color=color)
    bx.axhline(0, color="grey", lw=0.8)
    bx.set_xticks(list(xs), metrics, fontsize=8)
    bx.set_ylabel("B − A (points)")
    bx.set_title(f"B − A, {level}% paired bootstrap CI\n{HEADLINE}: exact McNemar p = {c.mcnemar_p:.3g}",
                 fontsize=10)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)
