"""The experiment's comparison: per policy (means over seeds) and per pair of policies, with the statistics that
say whether a difference is real.

- content bits per character: paired bootstrap over test units (documents, or the pieces of documents a small
  corpus is split by; each resample sums bits and characters over the same units for both policies, seeds
  averaged), 95% percentile intervals; one policy's interval comes from the same resamples.
- exact match (normalized tier, on the policy's own answers) and content exact match: exact McNemar over
  (item, seed) pairs.
- char F1 on content: paired bootstrap over items (seeds averaged).
- seed-to-seed spread: the standard deviation of a policy's bpc over its seeds (when there are several).
"""

from __future__ import annotations

import json
from collections import Counter
from itertools import combinations
from pathlib import Path

import numpy as np

from malmungchi.eval.canonical import fidelity
from malmungchi.eval.compare import mcnemar_exact, paired_bootstrap
from malmungchi.plots import pyplot, save_png

CONFIDENCE = 0.95
MIN_DOCUMENTS = 5  # fewer test documents than this give no interval worth printing


def _load(out: Path, arm: str, seeds) -> list[dict]:
    return [json.loads((out / "results" / f"{arm}-s{seed}" / "scores.json").read_text(encoding="utf-8"))
            for seed in seeds]


def _doc_sums(results: list[dict], docs: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per document: bits, chars and bytes averaged over seeds."""
    bits = np.mean([[r["bpc"]["by_doc"][d]["bits"] for d in docs] for r in results], axis=0)
    chars = np.asarray([results[0]["bpc"]["by_doc"][d]["chars"] for d in docs], dtype=np.float64)
    nbytes = np.asarray([results[0]["bpc"]["by_doc"][d]["bytes"] for d in docs], dtype=np.float64)
    return bits, chars, nbytes


def _ratio_resamples(bits: np.ndarray, chars: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return bits[idx].sum(axis=1) / np.maximum(chars[idx].sum(axis=1), 1)


def compare(s, out: Path) -> dict:
    arms = list(s.policies)
    results = {arm: _load(out, arm, s.seeds) for arm in arms}
    have_bpc = all(r["bpc"] for rs in results.values() for r in rs)
    docs = sorted(set.intersection(*(set(r["bpc"]["by_doc"]) for rs in results.values() for r in rs))) \
        if have_bpc else []
    ids = sorted(set.intersection(*(set(r["items"]) for rs in results.values() for r in rs)))
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(docs), size=(s.resamples, len(docs))) if docs else None
    sums = {arm: _doc_sums(results[arm], docs) for arm in arms} if docs else {}
    policies = {}
    for arm in arms:
        policies[arm] = _policy(arm, results[arm], ids, sums.get(arm), idx)
    unit = json.loads((out / "builds" / arms[0] / "manifest.json").read_text(encoding="utf-8"))["split_unit"]
    word = "documents" if unit == "document" else "pieces of documents"
    pairs = [_pair(a, b, results, ids, sums, idx, s.resamples, word) for a, b in combinations(arms, 2)]
    return {"policies": policies, "pairs": pairs, "n_items": len(ids), "n_documents": len(docs), "unit": word,
            "seeds": list(s.seeds), "confidence": CONFIDENCE, "verdicts": [p["verdict"] for p in pairs],
            "settings": dict(vars(s))}


def _policy(arm: str, rs: list[dict], ids: list[str], sums, idx) -> dict:
    def mean_items(key):
        return float(np.mean([[r["items"][i][key] for i in ids] for r in rs])) if ids else None

    out = {"em_normalized": mean_items("em_normalized"), "content_em": mean_items("content_em"),
           "char_f1": mean_items("content_char_f1"), "test_ids_sha256": rs[0]["test_ids_sha256"],
           "train_tokens": rs[0]["cost"]["train_tokens_per_epoch"],
           "trained_tokens": rs[0]["cost"]["trained_tokens"],
           "tokens_per_s": float(np.mean([r["cost"]["tokens_per_s"] or 0 for r in rs])),
           "wall_s": float(np.mean([r["cost"]["wall_s"] or 0 for r in rs])),
           "peak_memory_mb": rs[0]["cost"]["peak_memory_mb"],
           "fidelity": _mean_fidelity([fidelity(_counters(r["items"][i]) for i in ids) for r in rs]),
           "loss_curves": [r["loss_curve"] for r in rs],
           "eval_loss": [r["eval_loss"] for r in rs]}
    if sums is not None:
        bits, chars, nbytes = sums
        out["bpc"] = float(bits.sum() / chars.sum())
        out["bits_per_byte"] = float(bits.sum() / nbytes.sum())
        lo, hi = np.quantile(_ratio_resamples(bits, chars, idx), [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
        out["bpc_ci"] = [float(lo), float(hi)]
        per_seed = [r["bpc"]["bpc"] for r in rs]
        out["bpc_per_seed"] = per_seed
        out["bpc_seed_sd"] = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None
    return out


def _counters(item: dict) -> dict:
    return {"pred_markers": Counter(item["pred_markers"]), "gold_markers": Counter(item["gold_markers"])}


def _mean_fidelity(per_seed: list[dict]) -> dict:
    """Marker fidelity over the common items (computed again from them: the current definition), seeds averaged."""
    names = sorted(set().union(*per_seed))
    out = {}
    for name in names:
        vals = [f.get(name, {}) for f in per_seed]
        out[name] = {k: (float(np.mean([v[k] for v in vals if v.get(k) is not None]))
                         if any(v.get(k) is not None for v in vals) else None)
                     for k in ("precision", "recall", "f1")}
        out[name]["gold"] = vals[0].get("gold", 0)
        out[name]["predicted"] = float(np.mean([v.get("predicted", 0) for v in vals]))
    return out


def _pair(a: str, b: str, results: dict, ids: list[str], sums: dict, idx, resamples: int, word: str) -> dict:
    out: dict = {"a": a, "b": b}
    for key in ("em_normalized", "content_em"):
        only_a = sum(1 for ra, rb in zip(results[a], results[b]) for i in ids
                     if ra["items"][i][key] and not rb["items"][i][key])
        only_b = sum(1 for ra, rb in zip(results[a], results[b]) for i in ids
                     if rb["items"][i][key] and not ra["items"][i][key])
        out[f"{key}_only_a"], out[f"{key}_only_b"] = only_a, only_b
        out[f"mcnemar_p{'' if key == 'em_normalized' else '_content'}"] = mcnemar_exact(only_a, only_b)
    if ids:
        fa = [float(np.mean([r["items"][i]["content_char_f1"] for r in results[a]])) for i in ids]
        fb = [float(np.mean([r["items"][i]["content_char_f1"] for r in results[b]])) for i in ids]
        out["char_f1_diff"] = float(np.mean(fb) - np.mean(fa))
        out["char_f1_diff_ci"] = list(paired_bootstrap(fa, fb, resamples=resamples, seed=0, confidence=CONFIDENCE))
    if sums:
        (ba, ca, _), (bb, cb, _) = sums[a], sums[b]
        diff = _ratio_resamples(bb, cb, idx) - _ratio_resamples(ba, ca, idx)
        d = float(bb.sum() / cb.sum() - ba.sum() / ca.sum())
        lo, hi = np.quantile(diff, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
        out["bpc_diff"], out["bpc_diff_ci"] = d, [float(lo), float(hi)]
        n = len(ca)
        if n < MIN_DOCUMENTS:
            out["verdict"] = (f"{b} vs {a}: {d:+.4f} bits per character on {n} test unit(s): too few for an "
                              f"interval (at least {MIN_DOCUMENTS}); use more documents or a larger test share")
        elif lo > 0 or hi < 0:
            better = a if d > 0 else b
            out["verdict"] = (f"{b} vs {a}: {d:+.4f} bits per character, 95% CI {lo:+.4f}…{hi:+.4f} "
                              f"({better} predicts the text better, n={n} {word})")
        else:
            out["verdict"] = (f"{b} vs {a}: {d:+.4f} bits per character, 95% CI {lo:+.4f}…{hi:+.4f}: "
                              f"no difference detectable at n={n} {word}")
    else:
        out["verdict"] = f"{b} vs {a}: McNemar p={out['mcnemar_p']:.3g} on exact match (n={len(ids)} items)"
    return out


def write(rep: dict, out: Path) -> None:
    """report.json, report.md and the PNG plots (written to temporary names, then renamed)."""
    _atomic_text(out / "report.json", json.dumps(rep, indent=2, ensure_ascii=False, default=str) + "\n")
    _atomic_text(out / "report.md", markdown(rep))
    _plots(rep, out)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _fmt(x, spec=".4f") -> str:
    return "–" if x is None else format(x, spec)


def rows(rep: dict) -> list[list[str]]:
    """The policy × measures table (also printed by the CLI)."""
    out = []
    for arm, p in rep["policies"].items():
        ci = p.get("bpc_ci")
        fid = [f"{k} {_fmt(v.get('f1'), '.2f')}" for k, v in sorted(p["fidelity"].items()) if v.get("gold")]
        sd = p.get("bpc_seed_sd")
        out.append([arm, _fmt(p.get("bpc")) + (f" ±{sd:.4f}" if sd is not None else ""),
                    f"{_fmt(ci[0])}…{_fmt(ci[1])}" if ci else "–", _fmt(p["em_normalized"], ".3f"),
                    _fmt(p["content_em"], ".3f"), _fmt(p["char_f1"], ".3f"), ", ".join(fid) or "–",
                    f"{p['train_tokens']:,}", _fmt(p["tokens_per_s"], ",.0f"), _fmt(p["wall_s"], ".0f"),
                    _fmt(p.get("peak_memory_mb"), ",.0f")])
    return out


HEADERS = ["policy", "bpc", "95% CI", "EM", "EM content", "F1 content", "marker F1", "tokens/epoch", "tok/s",
           "train s", "peak MB"]
LEGEND = ("bpc: content bits per character (± seed sd); EM: exact match on the policy's own answers; EM and F1 "
          "content: against the canonical answers, markers and asides removed; marker F1: per marker kind; "
          "tokens/epoch: training tokens; tok/s, train s: training speed and wall time; peak MB: the training stage's "
          "peak memory (GPU: allocated; CPU: the process's resident set)")


def markdown(rep: dict) -> str:
    s = rep["settings"]
    lines = ["# Marker policy experiment", "",
             f"{rep['n_documents']} test {rep['unit']}, {rep['n_items']} test items, seeds {rep['seeds']}; "
             f"budget {s.get('max_steps')} steps (epochs {s.get('epochs')}), lr {s.get('lr')}, batch "
             f"{s.get('batch_size')}, LoRA r {s.get('lora_r')}, model {s.get('model')}, tokenizer "
             f"{s.get('tokenizer')}.", "",
             "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(rep)]
    lines += ["", "## Pairs", "", "| a | b | bpc b − a | 95% CI | McNemar p (EM) | McNemar p (content EM) | "
              "char F1 b − a | 95% CI |", "|---|---|---|---|---|---|---|---|"]
    for p in rep["pairs"]:
        ci = p.get("bpc_diff_ci")
        fci = p.get("char_f1_diff_ci")
        lines.append(f"| {p['a']} | {p['b']} | {_fmt(p.get('bpc_diff'), '+.4f')} | "
                     f"{(_fmt(ci[0], '+.4f') + '…' + _fmt(ci[1], '+.4f')) if ci else '–'} | "
                     f"{_fmt(p['mcnemar_p'], '.3g')} | {_fmt(p['mcnemar_p_content'], '.3g')} | "
                     f"{_fmt(p.get('char_f1_diff'), '+.4f')} | "
                     f"{(_fmt(fci[0], '+.4f') + '…' + _fmt(fci[1], '+.4f')) if fci else '–'} |")
    lines += ["", "## Verdicts", ""] + [f"- {v}" for v in rep["verdicts"]]
    lines += ["", "## Marker fidelity", "", "Per marker kind in the test answers (canonical form), seeds averaged: how "
              "often the answer has it (gold), how often the model wrote it (predicted), precision, recall, F1.", "",
              "| policy | marker | gold | predicted | precision | recall | F1 |", "|---|---|---|---|---|---|---|"]
    for arm, p in rep["policies"].items():
        for name, f in sorted(p["fidelity"].items()):
            lines.append(f"| {arm} | {name} | {f['gold']} | {f['predicted']:.1f} | {_fmt(f['precision'], '.3f')} | "
                         f"{_fmt(f['recall'], '.3f')} | {_fmt(f['f1'], '.3f')} |")
    lines += ["", LEGEND + ".", "", "Content bits per character: teacher-forced loss over the test documents' text without its "
              "markers, divided by its characters (lower is better; comparable across policies and tokenizers). "
              "EM (own answers) scores each policy against its own rendering of the answer; the content columns "
              "compare every policy against the same canonical answers with markers and asides removed.", "",
              "![loss curves](loss.png)", "", "![content bits per character](bpc.png)", ""]
    return "\n".join(lines)


def _plots(rep: dict, out: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for arm, p in rep["policies"].items():
        for k, curve in enumerate(p["loss_curves"]):
            if curve:
                steps, losses = zip(*curve)
                ax.plot(steps, losses, label=arm if k == 0 else None, alpha=0.8,
                        color=f"C{list(rep['policies']).index(arm)}")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (per token of its own tokenization)")
    ax.set_title("training loss per policy")
    ax.legend()
    fig.tight_layout()
    save_png(fig, out / "loss.png")
    plt.close(fig)
    arms = [a for a, p in rep["policies"].items() if p.get("bpc") is not None]
    if arms:
        _bpc_plot(rep, arms, plt, out / "bpc.png")


def _bpc_plot(rep: dict, arms: list[str], plt, path: Path) -> None:
    """Left: each policy's content bpc with its interval over test units; right: each policy minus the first
    one with the paired interval (the comparison the verdicts make: units vary far more than policies)."""
    pol = rep["policies"]
    ref = arms[0]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    vals = [pol[a]["bpc"] for a in arms]
    err = [[v - pol[a]["bpc_ci"][0] for a, v in zip(arms, vals)], [pol[a]["bpc_ci"][1] - v for a, v in zip(arms, vals)]]
    ax.errorbar(arms, vals, yerr=err, fmt="o", capsize=6)
    ax.set_ylabel("content bits per character (lower is better)")
    ax.set_title(f"content bpc, 95% CI over n={rep['n_documents']} {rep['unit']}", fontsize=10)
    diffs, lo, hi = [0.0], [0.0], [0.0]
    for a in arms[1:]:
        pair = next(p for p in rep["pairs"] if {p["a"], p["b"]} == {ref, a})
        sign = 1 if pair["b"] == a else -1
        d, (l, h) = sign * pair["bpc_diff"], sorted(sign * x for x in pair["bpc_diff_ci"])
        diffs.append(d)
        lo.append(d - l)
        hi.append(h - d)
    bx.errorbar(arms, diffs, yerr=[lo, hi], fmt="o", capsize=6, color="C1")
    bx.axhline(0, color="grey", lw=0.8)
    bx.set_ylabel(f"bpc minus {ref}'s (paired)")
    bx.set_title(f"difference from {ref}, paired 95% CI", fontsize=10)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)
