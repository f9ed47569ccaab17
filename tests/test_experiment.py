"""`malmungchi experiment markers` end to end on the bundled sample with a tiny from-scratch model, and the
measures it rests on (content bits per character, canonical content scores, marker fidelity)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from malmungchi.cli import main
from malmungchi.eval.canonical import content_scores, fidelity, spellings, to_canonical
from malmungchi.eval.normalize import Normalizer
from malmungchi.quickstart.pipeline import sample_dir

MARKERS = {"SOUND": {"rendered": "<|sound|>"}, "END_OF_BOOK": {"rendered": ""},
           "START_OF_TITLE": {"rendered": "|START_OF_TITLE|>"}}


def test_predictions_are_scored_on_canonical_content():
    pairs = spellings(MARKERS)
    assert pairs == [("<|sound|>", "|SOUND|>")]
    assert to_canonical("안녕 <|sound|>(웃음) 하세요", pairs) == "안녕 |SOUND|>(웃음) 하세요"
    n = Normalizer()
    gold = "안녕하세요. |SOUND|>(웃음) 우산 하나 살 수 있을까요?"
    # the special policy's prediction, the strip policy's (cue text kept, marker gone), the drop policy's
    for pred in ("안녕하세요. <|sound|>(웃음) 우산 하나 살 수 있을까요?<|im_end|>",
                 "안녕하세요. (웃음) 우산 하나 살 수 있을까요?", "안녕하세요. 우산 하나 살 수 있을까요?"):
        assert content_scores(pred, gold, pairs, n)["content_em"] == 1, pred
    wrong = content_scores("안녕하세요. 우산 둘", gold, pairs, n)
    assert wrong["content_em"] == 0 and 0 < wrong["content_char_f1"] < 1
    assert content_scores(None, gold, pairs, n)["content_char_f1"] == 0.0


def test_marker_fidelity_counts_markers_where_the_gold_has_them():
    n = Normalizer()
    pairs = spellings(MARKERS)
    items = [content_scores("<|sound|>(웃음) 네", "|SOUND|>(웃음) 네", pairs, n),  # right
             content_scores("네", "|SOUND|>(흐느낌) 네", pairs, n),  # missed
             content_scores("<|sound|> <|sound|> 아니", "아니", pairs, n)]  # two made up
    f = fidelity(items)["SOUND"]
    assert (f["gold"], f["predicted"], f["true_positives"]) == (2, 3, 1)
    assert f["precision"] == pytest.approx(1 / 3) and f["recall"] == pytest.approx(1 / 2)
    assert f["f1"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))


def test_content_bpc_weights_tokens_by_their_content_share(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from malmungchi.eval.bpc import content_bpc
    from malmungchi.train.tiny import tiny_llama_config

    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(tiny_llama_config(512)).save_pretrained(tmp_path / "m")
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "m"))
    ids = [5, 17, 300, 42, 99, 7]
    row = {"doc_id": "d", "input_ids": ids, "chars": [1, 2, 4, 1, 3, 0], "content_chars": [1, 2, 2, 0, 3, 0],
           "content_bytes": [1, 6, 6, 0, 9, 0]}
    got = content_bpc(model, [row, {**row, "doc_id": "e"}])
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
    nll = [-logp[t - 1, ids[t]].item() for t in range(1, len(ids))]
    share = [1.0, 0.5, 0.0, 1.0, 0.0]  # tokens 1..5: the first token is given, never predicted
    bits = sum(x * w for x, w in zip(nll, share)) / math.log(2)
    assert got.by_doc["d"].bits == pytest.approx(bits, rel=1e-4)
    assert got.by_doc["d"].chars == 7 and got.by_doc["d"].bytes == 21
    assert got.total.bpc == pytest.approx(bits / 7, rel=1e-4) and got.total.bits_per_byte == pytest.approx(bits / 21,
                                                                                                        rel=1e-4)


def test_experiment_markers_end_to_end(tmp_path):
    out = tmp_path / "exp"
    args = ["experiment", "markers", str(sample_dir()), "--out", str(out), "--policies", "special,text",
            "--max-steps", "2", "--hidden-size", "64", "--layers", "1", "--vocab-size", "400", "--max-length", "96",
            "--batch-size", "4", "--limit", "3", "--max-new-tokens", "4", "--json"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output[r.output.index("{"):])
    special, text = rep["policies"]["special"], rep["policies"]["text"]
    assert special["test_ids_sha256"] == text["test_ids_sha256"] and rep["n_items"] == 3
    assert 0 < special["bpc"] < 20 and 0 < text["bpc"] < 20 and special["bpc"] != text["bpc"]
    assert special["train_tokens"] < text["train_tokens"]  # one token per marker instead of several
    assert special["peak_memory_mb"] > 50 and text["peak_memory_mb"] > 50  # the training stage's (CPU: resident set)
    (pair,) = rep["pairs"]
    assert pair["a"] == "special" and pair["b"] == "text"
    assert pair["bpc_diff"] == pytest.approx(text["bpc"] - special["bpc"])
    # ten books are too few for whole-document splits: pieces of them, the same under both policies
    assert rep["unit"] == "pieces of documents" and rep["n_documents"] >= 5, rep["n_documents"]
    lo, hi = pair["bpc_diff_ci"]
    assert lo <= pair["bpc_diff"] <= hi and "95% CI" in pair["verdict"]
    assert all(not s["skipped"] for s in rep["stages"])
    # both train the same parameters: the whole embedding (the text build adds no token, and used to train none)
    for arm in ("special", "text"):
        how = json.loads((out / "runs" / f"{arm}-s0" / "run_manifest.json").read_text())["train_embeddings"]["how"]
        assert how.startswith("modules_to_save="), (arm, how)
    for name in ("report.md", "report.json", "loss.png", "bpc.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    first = (out / "report.json").read_bytes()
    # a rerun finds every stage done and writes the same report
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert all(s["skipped"] for s in json.loads(again.output[again.output.index("{"):])["stages"])
    assert (out / "report.json").read_bytes() == first


def test_experiment_markers_in_chat_mode(tmp_path):
    """--chat: the arms are scored on the same assistant turns (ids from the source, canonical answers) and content
    bits per character covers the assistant messages under every policy, also `drop`, which removes turns that
    hold only a marker."""
    out = tmp_path / "exp"
    r = CliRunner().invoke(main, ["experiment", "markers", str(sample_dir()), "--out", str(out), "--chat",
                                  "--policies", "special,drop", "--max-steps", "2", "--hidden-size", "64",
                                  "--layers", "1", "--vocab-size", "400", "--max-length", "512", "--batch-size", "4",
                                  "--limit", "3", "--max-new-tokens", "4", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output[r.output.index("{"):])
    special, drop = rep["policies"]["special"], rep["policies"]["drop"]
    assert special["test_ids_sha256"] == drop["test_ids_sha256"] and rep["n_items"] == 3
    assert 0 < special["bpc"] < 20 and 0 < drop["bpc"] < 20
    (pair,) = rep["pairs"]
    assert pair["bpc_diff"] == pytest.approx(drop["bpc"] - special["bpc"])
    items = [json.loads(x) for x in (out / "builds" / "drop" / "eval" / "test.jsonl").read_text().splitlines()]
    assert items and all(":t" in i["id"] and "answer_canonical" in i for i in items)


def test_experiment_refuses_bad_options_in_one_line(tmp_path):
    r = CliRunner().invoke(main, ["experiment", "markers", str(sample_dir()), "--out", str(tmp_path / "e"),
                                  "--policies", "special,bogus"])
    assert r.exit_code == 2 and "error: --policies: unknown bogus" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["experiment", "markers", str(sample_dir()), "--out", str(sample_dir())])
    assert r.exit_code == 2 and "overlaps the input" in r.output


def test_the_experiment_leaves_out_what_exclude_and_the_config_leave_out(tmp_path):
    """`experiment markers` read every file under its inputs: an index table beside the novels, which every other
    command leaves out by `[lint] exclude` (or --exclude), stopped it."""
    from malmungchi.experiment.markers import Corpus, Settings

    corpus = tmp_path / "c"
    corpus.mkdir()
    for f in sample_dir().glob("*.txt"):
        (corpus / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    (corpus / "list.csv").write_text("ID,Korean Title\n1,동백꽃\n", encoding="utf-8")
    (corpus / "notes.tsv").write_text("ID\tNote\n1,메모\n", encoding="utf-8")
    (tmp_path / "malmungchi.toml").write_text('[lint]\nexclude = ["notes.tsv"]\n', encoding="utf-8")
    got = Corpus.read(Settings(inputs=[str(corpus)], out=str(tmp_path / "exp"), exclude=("list.csv",)))
    names = sorted(Path(p).name for p, _ in got.inputs)
    assert names == sorted(f.name for f in sample_dir().glob("*.txt")), names
