"""Documentation that is generated from code stays in sync with it."""

from pathlib import Path

from malmungchi.corpus import rules

ROOT = Path(__file__).resolve().parents[1]


def test_rules_page_matches_the_rule_catalogue():
    assert (ROOT / "docs" / "rules.md").read_text(encoding="utf-8") == rules.markdown(), (
        "docs/rules.md is stale: run `python -m malmungchi.corpus.rules > docs/rules.md`"
    )


def test_every_rule_code_is_documented_with_a_fix_statement():
    for code, rule in rules.RULES.items():
        assert rule.doc and rule.summary, code
        if rule.fix is not None:
            assert f"Fix ({rule.fix.value})" in rule.doc, f"{code} doc must say what its {rule.fix.value} fix does"
