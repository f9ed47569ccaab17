"""`malmungchi eval compare`: paired flips, exact McNemar, seeded paired bootstrap."""

from __future__ import annotations

import json
from math import comb

import pytest
from click.testing import CliRunner

from malmungchi.cli import main
from malmungchi.eval.compare import compare, mcnemar_exact, paired_bootstrap


def _results(path, correct: list[int], f1: list[float] | None = None):
    rows = []
    for i, c in enumerate(correct):
        f = f1[i] if f1 else float(c)
        rows.append({"id": f"q{i}", "prediction": "정답" if c else "오답", "em_strict": c, "em_normalized": c,
                     "em_lenient": c, "char_f1": f, "normalizer": 1})
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _cli(*args):
    return CliRunner().invoke(main, ["eval", "compare", *map(str, args)])


@pytest.mark.parametrize("b, c, expected", [
    (0, 0, 1.0),
    (7, 1, 2 * (comb(8, 0) + comb(8, 1)) / 2 ** 8),  # 0.0703125
    (1, 7, 2 * (comb(8, 0) + comb(8, 1)) / 2 ** 8),
    (5, 5, 1.0),
    (10, 0, 2 / 2 ** 10),
])
def test_mcnemar_exact(b, c, expected):
    assert mcnemar_exact(b, c) == pytest.approx(expected)


def test_mcnemar_large_counts_do_not_overflow():
    assert 0 < mcnemar_exact(2000, 1800) < 0.01


def test_bootstrap_is_seeded_and_brackets_the_difference():
    a = [0, 1] * 50
    b = [1, 1] * 50
    one = paired_bootstrap(a, b, resamples=2000, seed=3, confidence=0.95)
    assert one == paired_bootstrap(a, b, resamples=2000, seed=3, confidence=0.95)
    assert one != paired_bootstrap(a, b, resamples=2000, seed=4, confidence=0.95)
    assert one[0] < 0.5 < one[1]
    assert paired_bootstrap(a, a, resamples=500, seed=0, confidence=0.95) == (0.0, 0.0)


def test_flips_and_p_value(tmp_path):
    # 20 items: A right on 0-9; B right on 1-17 → fixed 10-17 (8), broken 0 (1)
    a = _results(tmp_path / "a.jsonl", [1] * 10 + [0] * 10)
    b = _results(tmp_path / "b.jsonl", [0] + [1] * 17 + [0] * 2)
    c = compare(a, b, resamples=1000, seed=0)
    assert c.fixed == [f"q{i}" for i in range(10, 18)]
    assert c.broken == ["q0"]
    assert c.mcnemar_p == pytest.approx(2 * (comb(9, 0) + comb(9, 1)) / 2 ** 9)
    t = c.tiers["em_normalized"]
    assert (t["a"], t["b"], t["diff"]) == (0.5, 0.85, 0.35)
    assert t["ci_low"] <= 0.35 <= t["ci_high"]


def test_cli_json_and_verdict(tmp_path):
    a = _results(tmp_path / "a.jsonl", [0] * 100)
    b = _results(tmp_path / "b.jsonl", [1] * 40 + [0] * 60)
    r = _cli(a, b, "--json", "--resamples", "1000")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["n_paired"] == 100
    assert d["mcnemar"] == {"metric": "em_normalized", "b": 40, "c": 0, "p_value": pytest.approx(2 / 2 ** 40)}
    assert len(d["flips"]["a_wrong_b_right"]) == 40 and d["flips"]["a_right_b_wrong"] == []
    assert d["tiers"]["em_normalized"]["ci_low"] > 0
    assert r.stdout == _cli(a, b, "--json", "--resamples", "1000").stdout  # seeded: same answer twice
    text = _cli(a, b, "--resamples", "1000")
    assert text.exit_code == 0
    assert "B is better than A" in text.stdout
    same = _cli(a, a, "--resamples", "1000")
    assert "no significant difference" in same.stdout


def test_only_paired_ids_are_compared(tmp_path):
    a = _results(tmp_path / "a.jsonl", [1, 0, 1])
    b = _results(tmp_path / "b.jsonl", [1, 1])
    r = _cli(a, b, "--json", "--resamples", "200")
    d = json.loads(r.stdout)
    assert d["n_paired"] == 2 and d["only_a"] == ["q2"]
    assert "only in a.jsonl" in r.stderr


def test_bad_results_file(tmp_path):
    a = _results(tmp_path / "a.jsonl", [1, 0])
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"id": "q0", "prediction": "x"}\n', encoding="utf-8")
    r = _cli(a, bad)
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert 'b.jsonl:1: no numeric "em_strict"' in r.stderr


@pytest.mark.parametrize("b, c", [(5, 3), (100, 60), (1490, 1510), (1600, 1300)])
def test_mcnemar_matches_the_exact_binomial_tail(b, c):
    from fractions import Fraction

    n, m = b + c, min(b, c)
    exact = min(1.0, float(Fraction(2 * sum(comb(n, k) for k in range(m + 1)), 2 ** n)))
    assert mcnemar_exact(b, c) == pytest.approx(exact, rel=1e-9)


def test_mcnemar_at_twenty_thousand_disagreements_is_a_number_in_range():
    p = mcnemar_exact(10_000, 10_000)
    assert p == 1.0 and 0 < mcnemar_exact(9_800, 10_200) < 0.01


def test_flipped_predictions_are_one_line_each(tmp_path):
    """An untrained model's answer of 48 line breaks is one row of the flips table (`⏎×48`), not 48 empty lines;
    a line break inside a short answer shows as ⏎."""
    a = _results(tmp_path / "a.jsonl", [0, 0])
    b = _results(tmp_path / "b.jsonl", [1, 1])
    rows = [json.loads(x) for x in a.read_text(encoding="utf-8").splitlines()]
    rows[0]["prediction"], rows[1]["prediction"] = "\n" * 48, "하은: 네\n철수: 응"
    a.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    r = _cli(a, b, "--resamples", "200")
    assert r.exit_code == 0, r.output
    table = r.stdout[r.stdout.index("flipped items"):].splitlines()
    assert "⏎×48" in r.stdout and "하은: 네⏎철수: 응" in r.stdout
    assert len(table) <= 3 + 2 * 2  # title, header, rule, and at most two lines an item


def test_plot_draws_the_comparison_reproducibly_and_a_bad_path_is_one_line(tmp_path):
    a = _results(tmp_path / "a.jsonl", [0] * 30 + [1] * 10)
    b = _results(tmp_path / "b.jsonl", [1] * 25 + [0] * 15)
    r = _cli(a, b, "--resamples", "500", "--plot", tmp_path / "c.png")
    assert r.exit_code == 0, r.output
    png = (tmp_path / "c.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and "c.png" in r.stderr
    assert _cli(a, b, "--resamples", "500", "--plot", tmp_path / "d.png", "--json").exit_code == 0
    assert (tmp_path / "d.png").read_bytes() == png  # same results, same seed: the same bytes
    for bad in (tmp_path / "missing" / "c.png", tmp_path / "c.txt"):
        r = _cli(a, b, "--plot", bad)
        assert r.exit_code == 2 and r.stderr.strip().splitlines() == [
            f"error: --plot {bad}: give a .png file in a folder that exists"]
    assert not (tmp_path / "c.txt").exists()


def test_the_plot_legend_tells_two_results_files_of_one_name_apart():
    from malmungchi.eval.compare_plot import _names

    assert _names("runs/special/results.jsonl", "runs/strip/results.jsonl") == ("special/results.jsonl",
                                                                              "strip/results.jsonl")
    assert _names("a.jsonl", "b.jsonl") == ("a.jsonl", "b.jsonl")
