"""`malmungchi corpus export`: every format loads with `datasets` and holds every kept document of the build in the
split `corpus build` put it in; the axolotl segments tokenize back to the build's ids; the tokenized rows are the
build's rows unpacked; text-mode builds refuse the conversational formats; same inputs, same bytes."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from malmungchi.atomic import umask
from malmungchi.cli import main

datasets = pytest.importorskip("datasets")
SPLITS = ("train", "validation", "test")
OPTS = ("--max-length", 512)


def run(*args):
    return CliRunner().invoke(main, ["corpus", *[str(a) for a in args]], catch_exceptions=False)


@pytest.fixture(scope="module")
def chat_build(tmp_path_factory, sample_dir, qwen3_tokenizer_dir):
    out = tmp_path_factory.mktemp("chat") / "build"
    r = run("build", sample_dir, "--tokenizer", qwen3_tokenizer_dir, "--mode", "chat", *OPTS, "--out", out)
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def chat_exports(tmp_path_factory, sample_dir, qwen3_tokenizer_dir):
    root = tmp_path_factory.mktemp("exports")
    for fmt in ("messages", "sharegpt", "alpaca", "axolotl", "tokenized"):
        r = run("export", sample_dir, "--tokenizer", qwen3_tokenizer_dir, "--mode", "chat", *OPTS, "--format", fmt,
                "--out", root / fmt)
        assert r.exit_code == 0, r.output
    return root


def _load(folder, fmt):
    if fmt == "tokenized":
        return datasets.load_dataset("parquet", data_files={s: str(folder / f"{s}.parquet") for s in SPLITS})
    return datasets.load_dataset("json", data_files={s: str(folder / f"{s}.jsonl") for s in SPLITS})


def _build_rows(build):
    """Per split: the build's sequences as (sequence id, ids, mask), the packed rows cut at seq_lengths."""
    ds = datasets.load_dataset("parquet", data_dir=str(build / "data"))
    out = {}
    for split in SPLITS:
        seqs = {}
        for row in ds[split]:
            at = 0
            for sid, n in zip(row["doc_ids"], row["seq_lengths"]):
                seqs[sid] = (row["input_ids"][at:at + n], row["assistant_masks"][at:at + n])
                at += n
        out[split] = seqs
    return out


@pytest.mark.parametrize("fmt", ["messages", "sharegpt", "alpaca", "axolotl", "tokenized"])
def test_every_kept_document_is_in_its_split(fmt, chat_exports, chat_build):
    manifest = json.loads((chat_build / "manifest.json").read_text())
    want_docs = {s: {d["id"] for d in manifest["documents"] if d["status"] == "kept" and s in d["split"].split("+")}
                 for s in SPLITS}
    want_seqs = {s: set(seqs) for s, seqs in _build_rows(chat_build).items()}
    ds = _load(chat_exports / fmt, fmt)
    for split in SPLITS:
        assert set(ds[split]["doc_id"]) == want_docs[split], (fmt, split)
        assert sorted(ds[split]["id"]) == sorted(want_seqs[split]), (fmt, split)  # each sequence once
    summary = json.loads((chat_exports / fmt / "export.json").read_text())
    assert {s: summary["splits"][s]["records"] for s in SPLITS} == \
        {s: manifest["splits"][s]["sequences"] for s in SPLITS}


def test_tokenized_rows_are_the_build_rows_unpacked(chat_exports, chat_build):
    rows = _build_rows(chat_build)
    ds = _load(chat_exports / "tokenized", "tokenized")
    for split in SPLITS:
        for rec in ds[split]:
            ids, mask = rows[split][rec["id"]]
            assert rec["input_ids"] == ids
            assert rec["labels"] == [t if m else -100 for t, m in zip(ids, mask)]
            assert rec["attention_mask"] == [1] * len(ids)
    assert any(-100 in r["labels"] for r in ds["train"]) and any(t != -100 for r in ds["train"] for t in r["labels"])


def test_conversational_formats_say_the_same_conversation(chat_exports):
    msgs = {r["id"]: r["messages"] for r in _load(chat_exports / "messages", "messages")["train"]}
    share = {r["id"]: r for r in _load(chat_exports / "sharegpt", "sharegpt")["train"]}
    alpaca = {r["id"]: r for r in _load(chat_exports / "alpaca", "alpaca")["train"]}
    assert msgs.keys() == share.keys() == alpaca.keys()
    for sid, m in msgs.items():
        system = m[0]["content"] if m[0]["role"] == "system" else ""
        turns = [x for x in m if x["role"] != "system"]
        conv = share[sid]["conversations"]
        assert share[sid]["system"] == system and conv[-1]["from"] == "gpt"
        assert [c["from"] for c in conv] == ["human", "gpt"] * (len(conv) // 2)  # as LLaMA-Factory checks
        assert [c["value"] for c in conv][-len(turns):] == [t["content"] for t in turns]
        a = alpaca[sid]
        pairs = [*a["history"], [a["instruction"], a["output"]]]
        assert [v for p in pairs for v in p] == [c["value"] for c in conv] and a["system"] == system


def test_llamafactory_and_axolotl_side_files(chat_exports, chat_build):
    manifest = json.loads((chat_build / "manifest.json").read_text())
    special = dict(sorted(((m["token"], (m["id"], m["description"])) for m in manifest["markers"].values()
                           if m["policy"] == "special"), key=lambda kv: kv[1][0]))  # in id order
    for fmt, formatting in (("sharegpt", "sharegpt"), ("alpaca", "alpaca")):
        info = json.loads((chat_exports / fmt / "dataset_info.json").read_text())
        assert set(info) == {f"malmungchi_{s}" for s in SPLITS}
        assert info["malmungchi_train"]["file_name"] == "train.jsonl"
        assert info["malmungchi_train"]["formatting"] == formatting
        tokens = yaml.safe_load((chat_exports / fmt / "new_special_tokens.yaml").read_text(encoding="utf-8"))
        assert tokens == {t: d for t, (_, d) in special.items()} and tokens["<|sound|>"] == "소리"
        header = (chat_exports / fmt / "new_special_tokens.yaml").read_text(encoding="utf-8").split("\n")[:3]
        assert "skip_special_tokens: false" in header[0] and f"add_tokens: {','.join(special)} " in header[1]
    cfg = yaml.safe_load((chat_exports / "axolotl" / "axolotl.yaml").read_text(encoding="utf-8"))
    assert cfg["datasets"] == [{"path": "train.jsonl", "ds_type": "json", "type": "input_output"}]
    assert cfg["tokens"] == list(special) and cfg["peft_trainable_token_indices"] == [i for i, _ in special.values()]
    assert cfg["train_on_inputs"] is False and cfg["tokenizer_config"] == "tokenizer"
    assert (chat_exports / "axolotl" / cfg["tokenizer_config"] / "tokenizer.json").is_file()


@pytest.mark.parametrize("mode", ["text", "chat"])
@pytest.mark.parametrize("tok_name", ["qwen3", "llama3"])
def test_axolotl_segments_tokenize_back_to_the_build_ids(mode, tok_name, request, sample_dir, tmp_path):
    """Axolotl tokenizes each segment alone, without special tokens, and concatenates the ids: that must give the
    build's ids and loss mask exactly, on the bundled sample with both real tokenizers."""
    from malmungchi.prep.export import export, retokenize
    from malmungchi.schemas.config import BuildConfig
    from malmungchi.schemas.registry import default_registry
    from malmungchi.prep.build import plan

    tok_dir = request.getfixturevalue(f"{tok_name}_tokenizer_dir")
    p = plan([str(sample_dir)], BuildConfig(mode=mode, max_length=512), default_registry(),
             tokenizer_source=str(tok_dir))
    summary = export(p, tmp_path / "ax", "axolotl")
    assert summary["not_lossless"] == 0
    by_id = {q.id: q for s in SPLITS for q in p.splits[s]}
    records = [json.loads(x) for s in SPLITS for x in (tmp_path / "ax" / f"{s}.jsonl").read_text().splitlines()]
    assert len(records) == len(by_id) > 0
    labels_seen = set()
    for rec in records:
        q = by_id[rec["id"]]
        assert retokenize(p.tokenizer, rec["segments"]) == q.ids.tolist()
        mask = q.mask if q.has_mask else np.ones(q.n, np.int8)
        got = [int(s["label"]) for s in rec["segments"]
               for _ in p.tokenizer(s["text"], add_special_tokens=False)["input_ids"]]
        assert got == mask.tolist()
        labels_seen |= {s["label"] for s in rec["segments"]}
    assert labels_seen == ({True} if mode == "text" else {True, False})


def test_text_mode_refuses_conversational_formats_and_exports_tokens(sample_dir, qwen3_tokenizer_dir, tmp_path):
    for fmt in ("messages", "sharegpt", "alpaca"):
        r = CliRunner().invoke(main, ["corpus", "export", str(sample_dir), "--tokenizer", str(qwen3_tokenizer_dir),
                                      "--format", fmt, "--out", str(tmp_path / fmt)])
        assert r.exit_code == 2 and "needs a chat-mode build" in r.output and "axolotl, tokenized" in r.output
        assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / fmt).exists()
    r = run("export", sample_dir, "--tokenizer", qwen3_tokenizer_dir, *OPTS, "--format", "tokenized", "--split",
            "train", "--out", tmp_path / "tok")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == ["export.json", "tokenizer", "train.parquet"]
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "tok" / "train.parquet"))["train"]
    assert all(r["labels"] == r["input_ids"] for r in ds)  # text mode: every token carries the loss


def test_same_inputs_same_bytes_and_force(chat_exports, sample_dir, qwen3_tokenizer_dir, tmp_path):
    args = ("export", sample_dir, "--tokenizer", qwen3_tokenizer_dir, "--mode", "chat", *OPTS, "--format", "sharegpt")
    r = run(*args, "--out", tmp_path / "again")
    assert r.exit_code == 0, r.output
    first = chat_exports / "sharegpt"
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*") if p.is_file())
    for f in files:
        assert (first / f).read_bytes() == (tmp_path / "again" / f).read_bytes(), f
    r = CliRunner().invoke(main, ["corpus", *map(str, args), "--out", str(tmp_path / "again")])
    assert r.exit_code == 2 and "already exists" in r.output and "--force" in r.output
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    r = CliRunner().invoke(main, ["corpus", *map(str, args), "--out", str(tmp_path / "other"), "--force"])
    assert r.exit_code == 2 and "not an earlier export" in r.output and (tmp_path / "other" / "notes.txt").exists()
    r = run(*args, "--out", tmp_path / "again", "--force")
    assert r.exit_code == 0, r.output


DEAD_PID = 99999999  # above any pid_max: never a live process


def _snapshot(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_export_is_shared_like_a_folder_and_a_force_killed_mid_swap_is_undone(sample_dir, qwen3_tokenizer_dir,
                                                                                 tmp_path):
    """The export folder gets the mode a plain mkdir gives (not mkdtemp's 0700); a `--force` export killed between
    its two renames is put back by the next export, and what killed exports left is removed."""
    out = tmp_path / "exp"
    args = ("export", sample_dir, "--tokenizer", qwen3_tokenizer_dir, *OPTS, "--format", "tokenized", "--split",
            "validation", "--out", out)
    r = run(*args)
    assert r.exit_code == 0, r.output
    (tmp_path / "plain").mkdir()
    assert oct(out.stat().st_mode & 0o777) == oct((tmp_path / "plain").stat().st_mode & 0o777)
    (tmp_path / "plain").rmdir()
    before = _snapshot(out)
    # the state a kill leaves after `out → .old/saved` and before `.tmp → out`
    old = tmp_path / f".exp.{DEAD_PID}.abc.old"
    old.mkdir()
    out.rename(old / "saved")
    half = tmp_path / f".exp.{DEAD_PID}.def.tmp"
    half.mkdir()
    (half / "validation.parquet").write_bytes(b"half a file")
    r = CliRunner().invoke(main, ["corpus", *map(str, args)])  # no --force: the earlier export is back, and kept
    assert r.exit_code == 2 and "already exists" in r.stderr and "restored" in r.stderr, r.output
    assert _snapshot(out) == before
    r = run(*args, "--force")
    assert r.exit_code == 0, r.output
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]
    assert oct(out.stat().st_mode & 0o777) == oct(0o777 & ~umask())


@pytest.mark.parametrize("killed", ["build", "export"])
def test_a_force_killed_mid_swap_is_undone_by_the_other_command_too(killed, sample_dir, qwen3_tokenizer_dir,
                                                                     tmp_path):
    """`corpus build --force --out foo` killed between its two renames, then `corpus export --force --out foo`
    (or the other way round): the earlier output is put back, not deleted as a stale temporary, and `--force`
    refuses to replace what is not its own kind."""
    out = tmp_path / "foo"
    build = ("build", sample_dir, "--tokenizer", qwen3_tokenizer_dir, *OPTS, "--out", out)
    export = ("export", sample_dir, "--tokenizer", qwen3_tokenizer_dir, *OPTS, "--format", "tokenized", "--split",
              "validation", "--out", out)
    first, then = (build, export) if killed == "build" else (export, build)
    r = run(*first)
    assert r.exit_code == 0, r.output
    before = _snapshot(out)
    old = tmp_path / f".foo.{DEAD_PID}.abc.old"  # the state the killed --force left
    old.mkdir()
    out.rename(old / "saved")
    (tmp_path / f".foo.{DEAD_PID}.def.tmp").mkdir()
    r = CliRunner().invoke(main, ["corpus", *map(str, then), "--force"])
    refusal = "not a build directory" if then is build else "not an earlier export"
    assert r.exit_code == 2 and "restored" in r.stderr and refusal in r.stderr, r.output
    assert _snapshot(out) == before and not old.exists()


@pytest.mark.parametrize("command", ["build", "export"])
def test_force_never_replaces_what_another_process_wrote_meanwhile(command, sample_dir, qwen3_tokenizer_dir,
                                                                     tmp_path, monkeypatch):
    """`--force` with no `out` yet: a folder someone else puts there while the output is written is refused (and
    kept), not replaced; a writer that gets there during the final rename is told to run again, not to pass the
    --force it passed."""
    from malmungchi import outdir
    from malmungchi.errors import UserError
    from malmungchi.prep import export as ex, write
    from malmungchi.prep.build import plan
    from malmungchi.schemas.config import BuildConfig
    from malmungchi.schemas.registry import default_registry

    p = plan([str(sample_dir)], BuildConfig(max_length=512), default_registry(),
             tokenizer_source=str(qwen3_tokenizer_dir))
    module = write if command == "build" else ex
    out = tmp_path / "foo"
    real = module._write_into

    def meanwhile(*args):
        out.mkdir()
        (out / "theirs.txt").write_text("theirs")
        return real(*args)

    def go():
        return write.write_build(p, out, force=True) if command == "build" else ex.export(p, out, "tokenized",
                                                                                            force=True)

    monkeypatch.setattr(module, "_write_into", meanwhile)
    with pytest.raises(UserError, match="not a build directory" if command == "build" else "not an earlier export"):
        go()
    assert sorted(f.name for f in out.iterdir()) == ["theirs.txt"] and sorted(tmp_path.iterdir()) == [out]
    out.joinpath("theirs.txt").unlink()
    out.rmdir()
    monkeypatch.setattr(module, "_write_into", real)
    monkeypatch.setattr(outdir, "swap_in", lambda tmp, out, replace: False)  # the other writer won the rename
    with pytest.raises(UserError) as err:
        go()
    assert str(err.value) == f"{out} was written by another process meanwhile; run again"


def _tokenized_table_as_lists(seqs):
    """The tokenized table as export made it before it was built from buffers: Python lists per row."""
    import pyarrow as pa

    from malmungchi.prep.export import IGNORE_INDEX, TOKENIZED_SCHEMA

    ids = [q.ids.astype(np.int32) for q in seqs]
    masks = [(q.mask if q.has_mask else np.ones(q.n, np.int8)).astype(np.int8) for q in seqs]
    return pa.Table.from_pydict({
        "id": [q.id for q in seqs], "doc_id": [q.doc_id for q in seqs],
        "input_ids": [i.tolist() for i in ids], "attention_mask": [np.ones(len(i), np.int8).tolist() for i in ids],
        "labels": [np.where(m == 1, i, IGNORE_INDEX).astype(np.int32).tolist() for i, m in zip(ids, masks)],
    }, schema=TOKENIZED_SCHEMA)


@pytest.mark.parametrize("mode", ["text", "chat"])
def test_tokenized_parquet_from_buffers_has_the_bytes_of_the_list_built_one(mode, sample_dir, qwen3_tokenizer_dir,
                                                                           tmp_path, monkeypatch):
    """Same schema (string ids, list<int32> ids and labels, list<int8> attention mask), same values, same bytes as
    `pq.write_table` of the table made from Python lists; also cut into several row groups, and for no sequence."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from malmungchi.prep import export as ex
    from malmungchi.prep.build import plan
    from malmungchi.schemas.config import BuildConfig
    from malmungchi.schemas.registry import default_registry

    p = plan([str(sample_dir)], BuildConfig(mode=mode, max_length=512), default_registry(),
             tokenizer_source=str(qwen3_tokenizer_dir))
    settings = dict(compression="zstd", use_dictionary=False, write_statistics=False)
    for name, seqs, group in [("train", p.splits["train"], None), ("cut", p.splits["train"], 3), ("none", [], None)]:
        if group:
            monkeypatch.setattr(ex, "TOKENIZED_ROW_GROUP", group)
        before = _tokenized_table_as_lists(seqs)
        pq.write_table(before, tmp_path / f"{name}.lists.parquet", row_group_size=group, **settings)
        ex._write_tokenized(tmp_path / f"{name}.parquet", seqs)
        assert (tmp_path / f"{name}.parquet").read_bytes() == (tmp_path / f"{name}.lists.parquet").read_bytes(), name
        table = pq.read_table(tmp_path / f"{name}.parquet")
        assert table.schema == ex.TOKENIZED_SCHEMA == pa.schema([
            ("id", pa.string()), ("doc_id", pa.string()), ("input_ids", pa.list_(pa.int32())),
            ("attention_mask", pa.list_(pa.int8())), ("labels", pa.list_(pa.int32()))])
        assert table.equals(before) and ex.tokenized_table(seqs).equals(before)
        groups = pq.ParquetFile(tmp_path / f"{name}.parquet").num_row_groups
        assert groups == -(-max(len(seqs), 1) // (group or ex.TOKENIZED_ROW_GROUP))  # none: one empty group
    train = _tokenized_table_as_lists(p.splits["train"])
    assert len(train) > 3
    assert any(-100 in row for row in train.column("labels").to_pylist()) == (mode == "chat")
    # a row group also ends before its tokens would overflow the int32 list offsets
    from malmungchi.prep import arrays

    monkeypatch.setattr(ex, "TOKENIZED_ROW_GROUP", 1024 * 1024)
    monkeypatch.setattr(arrays, "MAX_LIST_VALUES", max(q.n for q in p.splits["train"]) * 2)
    groups = list(ex.tokenized_tables(p.splits["train"]))
    assert len(groups) > 1 and all(sum(len(x) for x in g.column("input_ids").to_pylist()) <= arrays.MAX_LIST_VALUES
                                   for g in groups)
    assert pa.concat_tables(groups).equals(train)
    with pytest.raises(OverflowError, match="int32 offsets"):  # one table past the limit: refused, never wrapped
        ex.tokenized_table(p.splits["train"])


def test_int32_offsets_past_their_limit_are_refused_not_wrapped_round():
    """Arrow list and string arrays have int32 offsets: 2^31 - 1 values fit, one more would wrap round into a
    corrupt column, so `prep.arrays.offsets`, which makes every offsets array, refuses it."""
    from malmungchi.prep import arrays

    assert arrays.offsets([2**31 - 2, 1]).tolist() == [0, 2**31 - 2, 2**31 - 1]
    with pytest.raises(OverflowError, match="2147483648 values in one Arrow array: at most 2147483647"):
        arrays.offsets([2**31 - 1, 1])
