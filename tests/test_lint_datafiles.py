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
