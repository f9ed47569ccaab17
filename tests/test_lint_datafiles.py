"""Data-file checks: tab-separated transcripts saved as .csv are read as TSV, whatever their first line holds."""

from malmungchi.corpus.datafiles import check_table, table_delimiter

# shaped like an ETRI BACKSpeech transcript: start, end, speaker, text; commas inside the text
TRANSCRIPT = (
    "0.0\t2.1\tspeaker#A\t어, 그러니까 네, 맞아요.\r\n"
    "2.1\t3.0\tspeaker#B\t[네.(BC/continuer)]\r\n"
    "3.0\t5.5\tspeaker#A\t음/ 그게, 삼십 살 때였죠.\r\n"
)


def test_tab_separated_csv_with_commas_in_the_first_line_is_read_as_tsv():
    assert table_delimiter("talk.csv", TRANSCRIPT) == "\t"
    assert check_table(TRANSCRIPT, "talk.csv") == []


def test_a_ragged_row_in_such_a_file_is_still_reported():
    broken = TRANSCRIPT + "5.5\t6.0\tspeaker#B\n"
    diags = check_table(broken, "talk.csv")
    assert [d.code for d in diags] == ["D003"]
    assert "3 fields" in diags[0].message


def test_comma_separated_file_stays_csv():
    assert table_delimiter("pairs.csv", "Q,A,label\n안녕,반가워,0\n") == ","


def test_cp949_file_that_is_mostly_markers_is_recognised_as_cp949(tmp_path):
    """Marker names are ASCII letters; they must not hide that the Korean text around them is CP949."""
    from malmungchi.corpus.source import decode

    text = ("|START_OF_TITLE|>봄|END_OF_TITLE|>\n|START_OF_DIALOGUE|>\n철수: 응\n|END_OF_DIALOGUE|>\n"
            "|END_OF_BOOK|>\n")
    decoded = decode(text.encode("cp949"), "book.txt")
    assert [d.code for d in decoded.diagnostics] == ["F001"]
    assert decoded.text == text


def test_latin1_bytes_are_not_taken_for_cp949():
    from malmungchi.corpus.source import decode

    decoded = decode("café au lait, crème brûlée\n".encode("latin-1"), "menu.txt")
    assert [d.code for d in decoded.diagnostics] == ["F005"]


def test_a_short_row_ending_in_crlf_is_located_inside_its_line(tmp_path):
    """Found by the marker-soup property test: the row's end counted the CR of its CRLF (column 3 of a 1-character
    line)."""
    from malmungchi.corpus.datafiles import check_table

    (d,) = check_table("0\t\n|\r\n", "soup.csv")
    assert d.code == "D003" and (d.offset, d.end_offset) == (3, 4)
