"""`RUN_DIR/loss.png`: the loss curve a person looks at instead of reading metrics.json."""

from __future__ import annotations

from malmungchi.train.lossplot import write_loss_plot

RESUMED = {"loss_curve": [{"step": s, "loss": 6.0 / s, **({"before_resume": True} if s <= 4 else {})}
                          for s in range(1, 9)],
           "eval": [{"step": 4, "eval_loss": 2.5}, {"step": 8, "eval_loss": 1.9}]}


def test_the_plot_is_a_png_and_the_same_metrics_give_the_same_bytes(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert write_loss_plot(RESUMED, a, "run: tiny, 8 steps") and write_loss_plot(RESUMED, b, "run: tiny, 8 steps")
    assert a.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and a.read_bytes() == b.read_bytes()
    assert b"matplotlib" not in a.read_bytes()  # no version stamp that would change the bytes across installs
    other = {**RESUMED, "eval": []}
    write_loss_plot(other, b, "run: tiny, 8 steps")
    assert b.read_bytes() != a.read_bytes()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_no_logged_loss_writes_no_plot_and_removes_an_old_one(tmp_path):
    path = tmp_path / "loss.png"
    assert write_loss_plot(RESUMED, path, "t")
    assert not write_loss_plot({"loss_curve": [], "eval": []}, path, "t")
    assert not path.exists()


def test_a_diverged_run_is_marked_not_drawn_as_a_clean_curve(tmp_path):
    clean, diverged = tmp_path / "clean.png", tmp_path / "diverged.png"
    curve = [{"step": s, "loss": 6.0 / s} for s in range(1, 6)]
    write_loss_plot({"loss_curve": curve}, clean, "t")
    assert write_loss_plot({"loss_curve": curve + [{"step": 6, "loss": float("nan")},
                                                   {"step": 7, "loss": float("inf")}]}, diverged, "t")
    assert diverged.read_bytes() != clean.read_bytes()  # the two steps are marked
    only_nan = tmp_path / "nan.png"
    assert write_loss_plot({"loss_curve": [{"step": 1, "loss": float("nan")}]}, only_nan, "t")
    assert only_nan.read_bytes().startswith(b"\x89PNG")
