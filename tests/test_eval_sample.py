"""`--sample N --seed S [--stratify FIELD]` and the 95% intervals: the same ids on every run and in every process,
proportional strata, intervals against hand-computed values, and the sample-vs-full verdict of `eval compare`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from malmungchi.cli import main
from malmungchi.eval.compare import A_IN_B, OVERLAP, compare, mcnemar_exact
from malmungchi.eval.fingerprint import with_sample
from malmungchi.eval.intervals import bootstrap_mean
from malmungchi.eval.records import read_gold
from malmungchi.eval.sample import allocate, draw, rank, sample_gold
from malmungchi.eval.unpaired import fpc_se

SOURCES = ["news"] * 60 + ["talk"] * 30 + ["web"] * 10  # 100 gold records, three sources


def _write(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def gold(tmp_path) -> Path:
    return _write(tmp_path / "gold.jsonl", [{"id": f"q{i}", "prompt": "질문", "answer": "서울", "source": s}
                                            for i, s in enumerate(SOURCES)])


@pytest.fixture
def preds(tmp_path) -> Path:  # right on every third item
    return _write(tmp_path / "pred.jsonl", [{"id": f"q{i}", "prediction": "서울" if i % 3 == 0 else "부산"}
                                            for i in range(len(SOURCES))])


def _score(*args):
    return CliRunner().invoke(main, ["eval", "score", *map(str, args)])


def _sample_ids(gold, preds, *args) -> list[str]:
    r = _score("-p", preds, "-g", gold, "--json", *args)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["sample"]["ids"]


def test_same_seed_same_ids_twice_and_in_another_process(gold, preds):
    ids = _sample_ids(gold, preds, "--sample", 15, "--seed", 7)
    assert len(ids) == 15 and len(set(ids)) == 15
    assert ids == _sample_ids(gold, preds, "--sample", 15, "--seed", 7)
    assert ids != _sample_ids(gold, preds, "--sample", 15, "--seed", 8)
    assert ids == sorted(ids, key=lambda k: int(k[1:]))  # gold order
    # the ranking is sha256(seed:id), so this list holds on every machine, whatever PYTHONHASHSEED is
    code = ("import json, sys; from malmungchi.eval.records import read_gold; from malmungchi.eval.sample import draw; "
            "print(json.dumps(list(draw(read_gold(sys.argv[1]), 15, 7).keys)))")
    for hash_seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", code, str(gold)], env=env, capture_output=True, text=True,
                             check=True)
        assert json.loads(out.stdout) == ids


def test_ranking_is_sha256_of_seed_and_id(gold):
    items = read_gold(gold)
    expected = sorted((g.key for g in items), key=lambda k: rank(7, k))[:15]
    assert set(draw(items, 15, 7).keys) == set(expected)
    import hashlib

    assert rank(3, "q9") == hashlib.sha256(b"3:q9").hexdigest()
    assert set(draw(items, 10, 7).keys) < set(draw(items, 15, 7).keys)  # a bigger sample holds the smaller


def test_stratified_sample_is_proportional(gold, preds):
    r = _score("-p", preds, "-g", gold, "--json", "--sample", 20, "--seed", 1, "--stratify", "source")
    assert r.exit_code == 0, r.output
    sample = json.loads(r.stdout)["sample"]
    assert sample["strata"] == {"news": {"population": 60, "sample": 12}, "talk": {"population": 30, "sample": 6},
                                "web": {"population": 10, "sample": 2}}
    source = {f"q{i}": s for i, s in enumerate(SOURCES)}
    drawn = [source[k] for k in sample["ids"]]
    assert (drawn.count("news"), drawn.count("talk"), drawn.count("web")) == (12, 6, 2)
    assert json.loads(r.stdout)["n_total"] == 20


def test_allocation_by_largest_remainder():
    assert allocate({"a": 60, "b": 30, "c": 10}, 7) == {"a": 4, "b": 2, "c": 1}  # 4.2, 2.1, 0.7
    assert allocate({"b": 1, "a": 1}, 1) == {"a": 1, "b": 0}  # a tie goes to the name that sorts first
    assert sum(allocate({"x": 13, "y": 7, "z": 5}, 11).values()) == 11


def test_sample_errors_are_one_line(gold, preds, tmp_path):
    for args, expected in [
        (("--sample", 101), "--sample 101 is more than its 100 gold records"),
        (("--stratify", "source"), "--stratify source: stratifies a --sample"),
        (("--sample", 5, "--stratify", "genre"), 'gold.jsonl:1: no "genre" field for --stratify genre'),
    ]:
        r = _score("-p", preds, "-g", gold, *args)
        assert r.exit_code == 2, r.output
        assert len(r.stderr.strip().splitlines()) == 1 and expected in r.stderr, r.stderr


def test_the_sample_changes_the_run_fingerprint(gold):
    items = read_gold(gold)
    a, b = draw(items, 10, 0), draw(items, 10, 1)
    assert with_sample("f" * 16, None) == "f" * 16
    assert with_sample("f" * 16, a) != "f" * 16
    assert with_sample("f" * 16, a) != with_sample("f" * 16, b)
    assert with_sample("f" * 16, a) == with_sample("f" * 16, draw(items, 10, 0))
    kept, sample = sample_gold(items, gold, 10, 0)
    assert [g.key for g in kept] == list(a.keys) and sample == a


def test_wilson_and_bootstrap_intervals_in_the_summary(gold, preds, tmp_path):
    r = _score("-p", preds, "-g", gold, "--json")
    s = json.loads(r.stdout)
    # 34 of 100 right (q0, q3, ..., q99). Wilson by hand: p = .34, z = 1.959964, z² = 3.841459;
    # center = (.34 + z²/200) / (1 + z²/100) = .359207 / 1.038415 = .345919; half = z·sqrt(p(1-p)/100 + z²/40000)
    # / 1.038415 = 1.959964 · sqrt(.002340037) / 1.038415 = 1.959964 · .048374 / 1.038415 = .091304
    assert s["em_normalized"] == 0.34
    assert s["em_normalized_ci"] == pytest.approx([0.254615, 0.437223], abs=2e-6)
    assert s["em_strict_ci"] == s["em_lenient_ci"] == s["em_normalized_ci"]
    low, high = s["char_f1_ci"]
    assert low < s["char_f1"] < high and high - low < 0.25
    assert r.stdout == _score("-p", preds, "-g", gold, "--json").stdout  # the bootstrap is seeded
    table = _score("-p", preds, "-g", gold, "--show", 0, "--sample", 10, "--seed", 2)
    assert "95% CI" in table.stdout and "sample: 10 of 100 (seed 2" in table.stdout


def test_bootstrap_mean_is_seeded_and_degenerate_on_constants():
    values = [i / 99 for i in range(100)]  # mean .5, sd .29: the interval is about .5 ± 1.96 · .029
    assert bootstrap_mean(values) == bootstrap_mean(values)
    assert bootstrap_mean(values, seed=1) != bootstrap_mean(values)
    low, high = bootstrap_mean(values)
    assert low == pytest.approx(0.5 - 0.057, abs=0.01) and high == pytest.approx(0.5 + 0.057, abs=0.01)
    assert bootstrap_mean([0.7] * 9) == pytest.approx((0.7, 0.7))
    assert bootstrap_mean([]) is None


def _results(path: Path, scores: dict[str, int]) -> Path:
    return _write(path, [{"id": k, "prediction": "x", "em_strict": v, "em_normalized": v, "em_lenient": v,
                          "char_f1": float(v), "normalizer": 1} for k, v in scores.items()])


FULL = {f"q{i}": int(i % 25 < 17) for i in range(1000)}  # 680 of 1,000 right (68%)


def test_fpc_standard_error_by_hand():
    # 1,000 items, 680 ones: S² = 1000 · .68 · .32 / 999 = .217818; a 100-item sample: (1 − .1) · S² / 100
    assert fpc_se(list(FULL.values()), 100) == pytest.approx((0.9 * 0.217818 / 100) ** 0.5, rel=1e-5)
    assert fpc_se(list(FULL.values()), 1000) == 0


def test_compare_sample_inside_what_sampling_explains(tmp_path):
    right = [k for k, v in FULL.items() if v][:72]
    wrong = [k for k, v in FULL.items() if not v][:28]
    sample = {k: FULL[k] for k in sorted(right + wrong, key=lambda k: int(k[1:]))}  # 72 of 100 right
    full = _results(tmp_path / "full.jsonl", FULL)
    part = _results(tmp_path / "sample.jsonl", sample)
    c = compare(part, full, resamples=200)
    assert c.relation == A_IN_B and c.sample_side == "a"
    g = c.sampling["em_normalized"]
    assert (g.sample, g.full, round(g.gap, 6)) == (0.72, 0.68, 0.04)
    assert g.inside and g.p_value > 0.05 and g.half_range == pytest.approx(1.959964 * 0.044276, rel=1e-4)
    r = CliRunner().invoke(main, ["eval", "compare", str(part), str(full), "--resamples", "200"])
    assert r.exit_code == 0, r.output
    assert "sample (A) 72.0% vs full 68.0%: +4.0 points, inside what a 100-item sample explains" in r.stdout
    assert "±8.7" in r.stdout and "subset" in r.stderr
    d = json.loads(CliRunner().invoke(main, ["eval", "compare", str(full), str(part), "--json",
                                             "--resamples", "200"]).stdout)
    assert d["relation"] == "b_in_a" and d["sampling"]["sample"] == "b" and d["sampling"]["n_full"] == 1000
    assert d["sampling"]["metrics"]["em_normalized"]["inside"] is True


def test_compare_sample_outside_easier_items_or_another_run(tmp_path):
    full = _results(tmp_path / "full.jsonl", FULL)
    easy = _results(tmp_path / "easy.jsonl", {k: v for k, v in FULL.items() if v or k.endswith("9")})  # mostly right
    r = CliRunner().invoke(main, ["eval", "compare", str(easy), str(full), "--resamples", "200"])
    assert r.exit_code == 0, r.output
    assert "outside what a" in r.stdout and "the sample is not representative" in r.stdout
    assert "runs score the same items differently" not in r.stdout
    # representative items (68 right, 32 wrong in the full run), but the sample's run gets every one right
    right = [k for k, v in FULL.items() if v][:68]
    wrong = [k for k, v in FULL.items() if not v][:32]
    every = {k: 1 for k in sorted(right + wrong, key=lambda k: int(k[1:]))}
    better = _results(tmp_path / "better.jsonl", every)
    c = compare(better, full, resamples=200)
    g = c.sampling["em_normalized"]
    assert not g.inside and g.items_inside and g.runs_gap > g.half_range
    r = CliRunner().invoke(main, ["eval", "compare", str(better), str(full), "--resamples", "200"])
    assert "runs score the same items differently" in r.stdout and "not representative" not in r.stdout


def test_compare_partial_overlap_is_unpaired_on_the_rest(tmp_path):
    a = _results(tmp_path / "a.jsonl", {**{f"q{i}": FULL[f"q{i}"] for i in range(500)},
                                        **{f"x{i}": 1 for i in range(200)}})
    b = _results(tmp_path / "b.jsonl", {f"q{i}": FULL[f"q{i}"] for i in range(300, 1000)})
    c = compare(a, b, resamples=200)
    assert c.relation == OVERLAP and len(c.paired) == 200 and not c.sampling
    g = c.unpaired["em_normalized"]
    # A's own: q0..q299 (204 right) and x0..x199 (all right); B's own: q500..q999 (340 right)
    assert (g.n_a, g.n_b, g.a, g.b) == (500, 500, 0.808, 0.68)
    assert g.se == pytest.approx((0.808 * 0.192 / 499 + 0.68 * 0.32 / 499) ** 0.5, rel=1e-9)
    assert g.ci[1] < 0 and g.p_value < 1e-4
    r = CliRunner().invoke(main, ["eval", "compare", str(a), str(b), "--resamples", "200"])
    assert "overlap only partly" in r.stderr and "non-shared items score differently" in r.stdout
    same = _results(tmp_path / "same.jsonl", {f"q{i}": FULL[f"q{i}"] for i in range(0, 700)})
    r = CliRunner().invoke(main, ["eval", "compare", str(same), str(b), "--resamples", "200"])
    assert "no sign that the non-shared items differ" in r.stdout


def test_mcnemar_known_values_and_speed():
    assert mcnemar_exact(1, 9) == pytest.approx(0.021484375, rel=1e-12)  # 2 · (1 + 10) / 2^10
    assert mcnemar_exact(9, 1) == pytest.approx(0.021484375, rel=1e-12)
    start = time.perf_counter()
    p = mcnemar_exact(9_800, 10_200)
    # a guard against the exact sum's blow-up (big-integer binomials took 17-46 s here), not a speed figure: the
    # log-space sum takes milliseconds, so a loaded machine never comes near a second
    assert time.perf_counter() - start < 1.0
    assert p == pytest.approx(0.004780889, rel=1e-5)
