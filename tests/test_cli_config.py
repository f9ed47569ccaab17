"""`malmungchi config`: the settings a command would use, resolved, in a form that loads back as the same."""

from __future__ import annotations

import json
import tomllib

from click.testing import CliRunner

from malmungchi.cli import main


def test_config_prints_the_resolved_settings_and_they_load_back(tmp_path):
    (tmp_path / "malmungchi.toml").write_text(
        '[build]\nmax_length = 512\ndefault_policy = "text"\n[train]\nlora_r = 8\n[train.args]\nlearning_rate = 1e-4\n'
        '[markers.LAUGH]\nkind = "inline"\ndescription = "웃음"\n', encoding="utf-8")
    r = CliRunner().invoke(main, ["config", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"# resolved malmungchi settings; from {tmp_path / 'malmungchi.toml'}")
    data = tomllib.loads(r.output)
    assert data["build"]["max_length"] == 512 and data["build"]["default_policy"] == "text"
    assert data["build"]["eval_context"] == 512  # a default, filled in
    assert data["train"]["lora_r"] == 8 and data["train"]["lora_alpha"] == 16  # 2·r
    assert data["train"]["batch_size"] == 4  # trl-known, the default
    assert "lr" not in data["train"] and data["train"]["args"]["learning_rate"] == 1e-4  # set by [train.args]
    assert data["markers"]["LAUGH"]["description"] == "웃음"
    # written to a file, the output is a valid config with the same settings
    again = tmp_path / "again"
    again.mkdir()
    (again / "malmungchi.toml").write_text(r.output, encoding="utf-8")
    j1 = json.loads(CliRunner().invoke(main, ["config", str(tmp_path), "--json"]).output)
    j2 = json.loads(CliRunner().invoke(main, ["config", str(again), "--json"]).output)
    assert j1.pop("source") != j2.pop("source") and j1 == j2


def test_config_without_a_file_and_with_a_bad_one(tmp_path):
    r = CliRunner().invoke(main, ["config", str(tmp_path)])
    assert r.exit_code == 0 and "built-in defaults" in r.output.splitlines()[0]
    r = CliRunner().invoke(main, ["config", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "no such file or folder" in r.stderr and len(r.stderr.splitlines()) == 1
    (tmp_path / "malmungchi.toml").write_text("[build]\nmax_lenght = 3\n", encoding="utf-8")
    r = CliRunner().invoke(main, ["config", str(tmp_path)])
    assert r.exit_code == 2 and "max_lenght" in r.stderr and "Traceback" not in r.output


def test_shell_completion_completes_commands_and_choices(monkeypatch):
    """The README's completion line (`eval "$(_MALMUNGCHI_COMPLETE=bash_source malmungchi)"`) and what it
    answers: command names, a choice's values, marker policies."""
    def complete(words: str, env: str = "bash_complete") -> str:
        monkeypatch.setenv("_MALMUNGCHI_COMPLETE", env)
        monkeypatch.setenv("COMP_WORDS", words)
        monkeypatch.setenv("COMP_CWORD", str(len(words.split()) - (0 if words.endswith(" ") else 1)))
        return CliRunner().invoke(main, [], prog_name="malmungchi").output

    assert "_malmungchi_completion" in complete("", "bash_source")
    assert complete("malmungchi cor").split() == ["plain,corpus"]
    assert complete("malmungchi train run b --quant ").split() == ["plain,auto", "plain,4bit", "plain,8bit",
                                                                     "plain,none"]
    assert complete("malmungchi corpus build x --default-policy s").split() == ["plain,special", "plain,strip"]
