"""The `malmungchi corpus lint` and `corpus rule` command line: exit codes, usage errors, config errors,
output formats (json and sarif snapshots, github, statistics)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from malmungchi import __version__
from malmungchi.cli import main
from malmungchi.corpus.rules import RULES

FIXTURES = Path(__file__).parent / "fixtures" / "lint"
SNAPSHOT = FIXTURES / "snapshot"
UPDATE = os.environ.get("MALMUNGCHI_UPDATE_GOLDEN") == "1"

CLEAN = "|START_OF_TITLE|>깨끗한 책|END_OF_TITLE|>\n본문 |SOUND|>(쿵).\n|START_OF_DIALOGUE|>\n철수: 안녕.\n|END_OF_DIALOGUE|>\n|END_OF_BOOK|>\n"
DIRTY = "본문 <|SOUND|>(쿵).\n|END_OF_BOOK|>\n"  # one M003 at 1:4


def lint(*args: str, cwd: Path | None = None):
    """Run the CLI in-process; `cwd` makes the printed paths relative and stable."""
    old = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        result = CliRunner().invoke(main, ["corpus", "lint", *args])
    finally:
        os.chdir(old)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def corpus_rule(*args: str):
    result = CliRunner().invoke(main, ["corpus", "rule", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture
def work(tmp_path) -> Path:
    """A folder with its own (empty) config, so nothing above tmp_path leaks in."""
    (tmp_path / "malmungchi.toml").write_text("", encoding="utf-8")
    (tmp_path / "clean.txt").write_text(CLEAN, encoding="utf-8")
    (tmp_path / "dirty.txt").write_text(DIRTY, encoding="utf-8")
    return tmp_path


# -- exit codes -------------------------------------------------------------------------------------
def test_clean_file_exits_0(work):
    result = lint("--output-format", "text", "clean.txt", cwd=work)
    assert result.exit_code == 0
    assert result.stdout == "All checks passed!\n"


def test_findings_exit_1(work):
    result = lint("--output-format", "text", "dirty.txt", cwd=work)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == "dirty.txt:1:4: M003 [*] marker '<|SOUND|>' has a leading '<'"


def test_folder_is_searched(work):
    result = lint("--output-format", "text", ".", cwd=work)
    assert result.exit_code == 1
    assert re.findall(r"^(\S+?):\d+:\d+:", result.stdout, re.M) == ["./dirty.txt"]


def test_exit_zero_reports_but_exits_0(work):
    result = lint("--output-format", "text", "--exit-zero", "dirty.txt", cwd=work)
    assert result.exit_code == 0
    assert "M003" in result.stdout


def test_unknown_select_code_is_a_usage_error_with_did_you_mean(work):
    result = lint("--select", "M0O3", "dirty.txt", cwd=work)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "error: --select M0O3: no such rule code or prefix (did you mean M003?); see `malmungchi corpus rule --all`"
    ]


def test_unknown_ignore_code_is_a_usage_error(work):
    result = lint("--ignore", "Z9", "dirty.txt", cwd=work)
    assert result.exit_code == 2
    assert "error: --ignore Z9: no such rule code or prefix" in result.stderr


@pytest.mark.parametrize("args, codes", [
    (("--select", "M"), {"M003", "M002"}),
    (("--select", "m003,s"), {"M003", "S007"}),
    (("--ignore", "M003", "--ignore", "U"), {"M002", "S007"}),
    (("--select", "ALL", "--ignore", "M,S"), {"U002"}),
])
def test_select_and_ignore_filter_codes(work, args, codes):
    (work / "many.txt").write_text("<|SOUND|> |SOUNDS|> 가\u200b나\n", encoding="utf-8")
    result = lint("--output-format", "json", *args, "many.txt", cwd=work)
    assert {d["code"] for d in json.loads(result.stdout)} == codes


def test_missing_path_exits_2_with_one_line(work):
    result = lint("--output-format", "text", "nope.txt", cwd=work)
    assert result.exit_code == 2
    assert result.stderr == "error: nope.txt: no such file or folder\n"
    assert "All checks passed" not in result.stdout  # nothing was checked: do not claim success


def test_missing_path_next_to_a_real_one_still_reports_the_real_one(work):
    result = lint("--output-format", "text", "dirty.txt", "nope.txt", cwd=work)
    assert result.exit_code == 2
    assert "dirty.txt:1:4: M003" in result.stdout
    assert "error: nope.txt: no such file or folder" in result.stderr


def test_no_path_at_all_is_a_usage_error(work):
    result = lint(cwd=work)
    assert result.exit_code == 2
    assert "Missing argument" in result.output


def test_unknown_output_format_is_a_usage_error(work):
    result = lint("--output-format", "xml", "dirty.txt", cwd=work)
    assert result.exit_code == 2


# -- configuration errors --------------------------------------------------------------------------------
def test_config_unknown_key_in_malmungchi_toml(work):
    (work / "malmungchi.toml").write_text('[lint]\nselct = ["M"]\n', encoding="utf-8")
    result = lint("dirty.txt", cwd=work)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: {work / 'malmungchi.toml'}: unknown key 'lint.selct' (did you mean 'select'?)"
    ]


def test_config_unknown_key_in_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.malmungchi.lint]\nignor = ["M"]\n')
    (tmp_path / "a.txt").write_text(DIRTY, encoding="utf-8")
    result = lint("a.txt", cwd=tmp_path)
    assert result.exit_code == 2
    assert "unknown key 'tool.malmungchi.lint.ignor' (did you mean 'ignore'?)" in result.stderr
    assert str(tmp_path / "pyproject.toml") in result.stderr


def test_config_several_errors_are_reported_at_once(work):
    (work / "malmungchi.toml").write_text('[lint]\nselct = ["M"]\nignore = 3\n', encoding="utf-8")
    result = lint("dirty.txt", cwd=work)
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and all(line.startswith("error: ") for line in lines)


def test_invalid_toml_is_a_usage_error(work):
    (work / "malmungchi.toml").write_text("[lint\n", encoding="utf-8")
    result = lint("dirty.txt", cwd=work)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {work / 'malmungchi.toml'}: not valid TOML")
    assert len(result.stderr.splitlines()) == 1


def test_explicit_missing_config_is_a_usage_error(work):
    result = lint("--config", "nowhere.toml", "dirty.txt", cwd=work)
    assert result.exit_code == 2
    assert "nowhere.toml" in result.stderr


def test_config_select_and_markers_apply(work):
    (work / "malmungchi.toml").write_text(
        '[lint]\nignore = ["S007"]\n\n[markers.LAUGH]\nkind = "inline"\ndescription = "웃음"\n', encoding="utf-8")
    (work / "laugh.txt").write_text("웃었다 |LAUGH|>.\n", encoding="utf-8")
    assert lint("--output-format", "text", "laugh.txt", cwd=work).exit_code == 0
    # the command line overrides the config's ignore list
    result = lint("--output-format", "text", "--ignore", "M", "laugh.txt", cwd=work)
    assert result.exit_code == 1 and "S007" in result.stdout


def test_config_is_found_from_a_nested_folder(work):
    (work / "malmungchi.toml").write_text('[lint]\nignore = ["M003"]\n', encoding="utf-8")
    (work / "deep" / "er").mkdir(parents=True)
    (work / "deep" / "er" / "d.txt").write_text(DIRTY, encoding="utf-8")
    assert lint("--output-format", "text", "deep/er/d.txt", cwd=work).exit_code == 0


# -- output formats -----------------------------------------------------------------------------------------
def test_json_snapshot():
    result = lint("--output-format", "json", "several.txt", cwd=SNAPSHOT)
    expected = SNAPSHOT / "several.json"
    if UPDATE:
        expected.write_text(result.stdout, encoding="utf-8")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == json.loads(expected.read_text(encoding="utf-8"))


def test_sarif_structure():
    result = lint("--output-format", "sarif", "several.txt", cwd=SNAPSHOT)
    assert result.exit_code == 1
    sarif = json.loads(result.stdout)
    assert sarif["version"] == "2.1.0"
    assert "sarif-2.1.0" in sarif["$schema"]
    (run,) = sarif["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "malmungchi" and driver["version"] == __version__
    rule_ids = [r["id"] for r in driver["rules"]]
    results = run["results"]
    assert sorted(set(rule_ids)) == rule_ids  # each rule once
    assert set(rule_ids) == {r["ruleId"] for r in results}
    for res in results:
        assert rule_ids[res["ruleIndex"]] == res["ruleId"]
        rule = driver["rules"][res["ruleIndex"]]
        assert rule["name"] == RULES[res["ruleId"]].name
        assert res["level"] in ("error", "warning") and res["level"] == rule["defaultConfiguration"]["level"]
        (loc,) = res["locations"]
        assert loc["physicalLocation"]["artifactLocation"]["uri"] == "several.txt"
        region = loc["physicalLocation"]["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1
        assert (region["startLine"], region["startColumn"]) <= (region["endLine"], region["endColumn"])
    # the same places as the JSON output
    diags = json.loads((SNAPSHOT / "several.json").read_text(encoding="utf-8"))
    assert [(r["ruleId"], r["locations"][0]["physicalLocation"]["region"]["startLine"],
             r["locations"][0]["physicalLocation"]["region"]["startColumn"]) for r in results] == \
           [(d["code"], d["line"], d["column"]) for d in diags]


def test_sarif_with_no_findings_is_still_valid(work):
    result = lint("--output-format", "sarif", "clean.txt", cwd=work)
    assert result.exit_code == 0
    sarif = json.loads(result.stdout)
    assert sarif["runs"][0]["results"] == [] and sarif["runs"][0]["tool"]["driver"]["rules"] == []


def test_github_format(work):
    result = lint("--output-format", "github", "dirty.txt", cwd=work)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "::warning file=dirty.txt,line=1,col=4,endLine=1,endColumn=13,title=M003::"
        "M003 marker '<|SOUND|>' has a leading '<'"
    ]


def test_statistics_text(work):
    (work / "many.txt").write_text("<|SOUND|> <|SOUND|> |SOUNDS|>\n|END_OF_BOOK|>\n", encoding="utf-8")
    result = lint("--output-format", "text", "--statistics", "many.txt", cwd=work)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "     2  M003  [*]  non-canonical-marker (warning)",
        "     1  M002       marker-near-miss (error)",
        "Found 3 problems (1 error, 2 warnings).",
        "[*] 2 fixable with `--fix`.",
        "1 more fixable with `--fix --unsafe-fixes`.",
    ]


def test_statistics_json(work):
    result = lint("--output-format", "json", "--statistics", "dirty.txt", cwd=work)
    assert json.loads(result.stdout) == [
        {"count": 1, "code": "M003", "name": "non-canonical-marker", "severity": "warning", "fixable": True}]


# -- corpus rule ----------------------------------------------------------------------------------------------
def test_rule_prints_one_rule():
    result = corpus_rule("m003", "--output-format", "text")
    assert result.exit_code == 0
    assert result.stdout.startswith("# M003 non-canonical-marker\n\n*warning, fix: safe*")
    assert RULES["M003"].doc in result.stdout


def test_rule_all_lists_every_code():
    result = corpus_rule("--all", "--output-format", "json")
    assert result.exit_code == 0
    assert [r["code"] for r in json.loads(result.stdout)] == list(RULES)
    table = corpus_rule("--all")
    assert table.exit_code == 0
    assert all(code in table.stdout for code in RULES)


def test_rule_typo_exits_2_with_did_you_mean():
    result = corpus_rule("M0O3")
    assert result.exit_code == 2
    assert result.stderr == "error: no rule 'M0O3' (did you mean M003?); `malmungchi corpus rule --all` lists them\n"


def test_rich_snippet_shows_the_reported_line(work):
    # regression: the snippet split lines with str.splitlines(), so a form feed (or U+2028) shifted every
    # later line and the caret stood under the wrong text; a UTF-16 file showed mojibake
    (work / "ff.txt").write_text("가\x0c나\n본문 <|SOUND|>\n|END_OF_BOOK|>\n", encoding="utf-8")
    (work / "wide.txt").write_bytes("첫 줄\n본문 <|SOUND|>\n|END_OF_BOOK|>\n".encode("utf-16"))
    for name, star in (("ff.txt", " [*]"), ("wide.txt", "")):  # no safe fix in a UTF-16 file
        result = lint("--output-format", "rich", "--select", "M", name, cwd=work)
        lines = result.stdout.splitlines()
        at = lines.index(f"{name}:2:4: M003{star} marker '<|SOUND|>' has a leading '<'")
        assert lines[at + 1] == "    2 │ 본문 <|SOUND|>"
        assert lines[at + 2] == "      │      ^^^^^^^^^"  # 본문 is four cells wide, then a space


@pytest.mark.parametrize("eol", ["\r", "\r\n", "\n"])
def test_positions_count_every_line_ending(tmp_path, eol):
    # a file with old-Mac CR line endings used to put every diagnostic on line 1; each ending now starts a line,
    # and the snippet under the diagnostic is that line
    text = f"|START_OF_TITLE|>책|END_OF_TITLE|>{eol}첫 줄.{eol}본문 <|SOUND|>(쿵).{eol}|END_OF_BOOK|>{eol}"
    (tmp_path / "a.txt").write_bytes(text.encode("utf-8"))
    result = lint("a.txt", "--output-format", "json", cwd=tmp_path)
    found = [d for d in json.loads(result.output) if d["code"] == "M003"]
    assert [(d["line"], d["column"], d["end_line"]) for d in found] == [(3, 4, 3)]
    shown = lint("a.txt", "--output-format", "rich", cwd=tmp_path).output
    assert "a.txt:3:4" in shown and "본문 <|SOUND|>(쿵)." in shown and "첫 줄" not in shown


def test_a_folder_with_nothing_to_check_is_not_all_checks_passed(tmp_path):
    """`corpus lint` of an empty folder (or a mistyped one holding other files) said "All checks passed!" while the
    build of it fails with "no corpus files"."""
    (tmp_path / "notes.md").write_text("# 메모\n", encoding="utf-8")
    r = lint(str(tmp_path))
    assert r.exit_code == 0 and "All checks passed!" not in r.output
    assert f"warning: no corpus files (.txt, .jsonl, .csv, .tsv) in {tmp_path}: nothing was checked" in r.stderr
    (tmp_path / "a.txt").write_text(CLEAN, encoding="utf-8")
    assert "All checks passed!" in lint(str(tmp_path)).stdout
    r = lint(str(tmp_path), "--exclude", "*.txt")
    assert "in " + str(tmp_path) + " once the excluded paths are left out: nothing was checked" in r.stderr
