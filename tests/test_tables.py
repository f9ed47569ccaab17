"""Tables fit the console without cutting a value: at 80 columns (what rich assumes for any output that is not a
terminal, a log or a pipe) a marker name or a confidence interval is printed whole, wrapped at spaces or split
into several tables that repeat the row's name, never `START_OF_…`."""

from __future__ import annotations

import io

import pytest
from click.testing import CliRunner
from rich.cells import cell_len
from rich.console import Console

from malmungchi.cli import main
from malmungchi.tables import fitted

HEADERS = ["policy", "bpc", "95% CI", "EM", "EM content", "F1 content", "marker F1", "tokens/epoch", "tok/s",
           "train s", "peak MB"]
ROWS = [["special", "5.2736", "5.0065…5.4429", "0.000", "0.000", "0.000", "SOUND 0.21 START_OF_DIALOGUE 0.50",
         "8,640", "11,920", "7", "760"],
        ["replace:\"<소리>\"", "5.2515", "4.9805…5.4201", "0.125", "0.000", "0.000", "SOUND 0.00", "10,218",
         "14,934", "4", "764"]]


def _render(tables, width: int) -> str:
    out = io.StringIO()
    c = Console(file=out, width=width, highlight=False, color_system=None)
    for t in tables:
        c.print(t)
    return out.getvalue()


LONGEST = [["sample/03_radio_transcripts.txt#1@u0", "책방 팟캐스트 책갈피 제12화, 골목 책방의 겨울", "1,052"],
           ["[part 1] 제1권", "가나 다라 마바 사아 자차 카타 파하 개정판 해설", "1,027"]]


@pytest.mark.parametrize("width", [40, 60, 80, 100, 200])
def test_no_value_is_cut_and_no_line_is_wider_than_the_console(width):
    tables = fitted("marker policies", HEADERS, ROWS, width, left=("policy", "marker F1"))
    text = _render(tables, width)
    assert text.count("…") == 2  # the two intervals' own: nothing cut
    lines = text.splitlines()
    assert max(cell_len(x) for x in lines) <= width
    words = [w for row in ROWS for cell in row for w in cell.split()]
    for w in words:  # each word of each cell whole on one line
        assert any(w in x for x in lines), (w, width)
    shown = [h for t in tables for h in (c.header for c in t.columns)]
    assert set(shown) == set(HEADERS)
    assert all(t.columns[0].header == "policy" for t in tables)  # every part names its rows


def test_a_table_that_fits_is_one_and_one_that_cannot_is_split_in_order():
    assert len(fitted("t", HEADERS, ROWS, 200)) == 1
    parts = fitted("t", HEADERS, ROWS, 80)
    assert len(parts) > 1 and str(parts[0].title) == f"t (1/{len(parts)})"
    order = [c.header for t in parts for c in t.columns if c.header != "policy"]
    assert order == HEADERS[1:]  # each column once, in order
    counts = [len(t.columns) - 1 for t in parts]
    assert max(counts) - min(counts) <= 1, counts  # shared out evenly: no last part of one column


def test_stats_at_80_columns_prints_marker_names_whole(tmp_path, qwen3_tokenizer_dir):
    (tmp_path / "a.txt").write_text("|START_OF_TITLE|>제목|END_OF_TITLE|>\n\n|START_OF_DIALOGUE|>\n철수: 안녕\n"
                                    "영희: 반가워\n|END_OF_DIALOGUE|>\n\n|SOUND|>(웃음)\n|END_OF_BOOK|>\n",
                                    encoding="utf-8")
    r = CliRunner().invoke(main, ["corpus", "stats", str(tmp_path / "a.txt"), "--tokenizer", qwen3_tokenizer_dir],
                           env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    for name in ("START_OF_TITLE", "START_OF_DIALOGUE", "END_OF_DIALOGUE", "END_OF_BOOK"):
        assert name in r.output, name


@pytest.mark.parametrize("width", range(50, 90))  # from the id and one more column side by side on
def test_korean_titles_wrap_whole_at_every_width(width):
    """Double-width Hangul in a left-justified column: rich ends a wrapped line that fills the column exactly with
    `…` unless the column folds; and a cell's brackets are text, not markup."""
    text = _render(fitted("longest documents", ["id", "title", "tokens"], LONGEST, width, left=("id", "title")),
                   width)
    assert "…" not in text and max(cell_len(x) for x in text.splitlines()) <= width
    lines = text.splitlines()
    for word in (w for row in LONGEST for cell in row for w in cell.split()):
        assert any(word in x for x in lines), (word, width)
    assert "[part 1]" in text


@pytest.mark.parametrize("width", [8, 12, 20, 25])
def test_a_console_narrower_than_one_word_folds_it(width):
    tables = fitted("t", ["id", "title", "tokens"], LONGEST, width, left=("id", "title"))
    text = _render(tables, width)
    assert "…" not in text and max(cell_len(x) for x in text.splitlines()) <= width
    assert all(c.width >= 1 for t in tables for c in t.columns)
    assert {c.header for t in tables for c in t.columns} == {"id", "title", "tokens"}
    assert fitted("t", ["id"], [], width) and fitted("t", ["a", "b"], [["x", "y"]], width, keys=5)


def _judge_summary() -> dict:
    agreement = {t: {"judge_yes_em_yes": 16, "judge_yes_em_no": 0, "judge_no_em_yes": 0, "judge_no_em_no": 0,
                     "agreement": 1.0, "kappa": None} for t in ("em_strict", "em_normalized", "em_lenient")}
    return {"judge_model": "toy", "scale": "binary", "prompt_sha": "9b385d759703dbda", "judge_accuracy": 1.0,
            "judge_accuracy_ci": [0.806, 1.0], "n_total": 16, "n_judged": 16, "n_failed": 0, "n_no_prediction": 0,
            "asked": 16, "resumed": 0, "structured_output": "json_schema", "cost_usd": None,
            "usage": {"prompt_tokens": 160, "completion_tokens": 80}, "agreement": agreement}


def test_eval_judge_tables_keep_tier_names_and_labels_whole_at_80_columns():
    """rich alone printed `em_norma…` in the agreement table and wrapped every label of the summary in three
    lines to fit the one long cost note beside them."""
    from malmungchi.eval import judge_report

    s = _judge_summary()
    text = _render([judge_report.summary_table(s), judge_report.agreement_table(s)], 80)
    assert "…" not in text and max(cell_len(x) for x in text.splitlines()) <= 80
    for tier in ("em_strict", "em_normalized", "em_lenient"):
        assert f" {tier} " in text
    lines = text.splitlines()
    for label in ("judge accuracy", "no verdict (left out, not 0)", "asked now / resumed", "tokens in / out"):
        assert any(x.startswith(f" {label} ") for x in lines), label  # a label on one line
    assert "--price-input" in text and "--price-output" in text


def test_room_goes_where_it_saves_the_most_wrapped_lines():
    """Five labels of 30 cells beside one value of 20: the value needs less room to fit whole, but the labels
    save five lines where it saves one (handing room to the column that needs least first wrapped every label)."""
    labels = [[f"label number {k} of many words", "1"] for k in range(5)] + [["cost", "give one price please"]]
    (t,) = fitted(None, ["", "value"], labels, 40, left=("",))
    widths = [c.width for c in t.columns]
    assert widths[0] == len("label number 0 of many words") and sum(widths) <= 40 - 2 * 2 - 1, widths
    text = _render([t], 40)
    assert all(any(x.startswith(f" label number {k} of many words ") for x in text.splitlines()) for k in range(5))


def test_titles_captions_and_cells_are_text_not_markup():
    """A results path like runs/[v2]/a.jsonl lost its brackets in a title, and `[/v2]` raised rich's MarkupError."""
    t = fitted("A = runs/[v2]/a.jsonl [/v2]", ["a", "b"], [["[bold]x[/]", "[/INST]"]], 80,
               caption="sample: [/x]")
    text = _render(t, 80)
    assert "A = runs/[v2]/a.jsonl" in text and "[/v2]" in text and "[bold]x[/]" in text and "[/INST]" in text
    assert "sample: [/x]" in text


def test_a_row_of_the_wrong_length_is_a_clear_error():
    with pytest.raises(ValueError, match="a row of 1 cells under 2 headers"):
        fitted("t", ["a", "b"], [["x"]], 80)


def test_an_empty_header_less_column_takes_a_cell_of_the_room_not_a_value():
    text = _render(fitted(None, ["", "", ""], [["abcdef ghijkl", "", "z"]], 22, show_header=False), 22)
    assert "z" in text and max(cell_len(x) for x in text.splitlines()) <= 22


@pytest.mark.parametrize("width", [40, 200])
def test_a_fitted_table_is_split_for_the_width_it_is_printed_at(width):
    from malmungchi.tables import Fitted

    t = Fitted("marker policies", HEADERS, ROWS, left=("policy", "marker F1"))
    text = _render([t], width)
    assert ("(1/" in text) == (width == 40) and max(cell_len(x) for x in text.splitlines()) <= width
