"""The CoNLL reader on real files: layouts, schemes, empty sentences, and errors that name file:line."""

import pytest

from pipelines.ner.conll import ConllError, read_conll


def write(tmp_path, text, name="data.conll", raw=None):
    p = tmp_path / name
    if raw is not None:
        p.write_bytes(raw)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def test_conll2003_layout_with_docstart_pos_and_chunk_columns(tmp_path):
    p = write(tmp_path, "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n"
                        ". . O O\n\nPeter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n\n-DOCSTART- -X- -X- O\n\n"
                        "Москва _ _ B-LOC\nи _ _ O\n北 _ _ B-LOC\n京 _ _ I-LOC\n")
    data = read_conll(p)
    assert [(s.tokens, s.tags, s.line) for s in data.sentences] == [
        (("EU", "rejects", "German", "."), ("B-ORG", "O", "B-MISC", "O"), 3),
        (("Peter", "Blackburn"), ("B-PER", "I-PER"), 8),
        (("Москва", "и", "北", "京"), ("B-LOC", "O", "B-LOC", "I-LOC"), 13),
    ]
    assert (data.scheme, data.retagged, data.empty_skipped, data.documents) == ("IOB2", 0, 0, 2)
    assert data.tokens == 10


def test_iob1_and_bioes_files_become_iob2(tmp_path):
    iob1 = read_conll(write(tmp_path, "Peter I-PER\nBlackburn I-PER\nmet O\nAnna I-PER\nBob B-PER\n", "a.conll"))
    assert iob1.scheme == "IOB1" and iob1.retagged == 2
    assert iob1.sentences[0].tags == ("B-PER", "I-PER", "O", "B-PER", "B-PER")
    bioes = read_conll(write(tmp_path, "New B-LOC\nYork E-LOC\nand O\nBonn S-LOC\n\nUN U-ORG\n", "b.conll"))
    assert bioes.scheme == "BIOES"
    assert [s.tags for s in bioes.sentences] == [("B-LOC", "I-LOC", "O", "B-LOC"), ("B-ORG",)]


def test_tabs_allow_spaces_in_tokens_and_crlf_and_bom_are_fine(tmp_path):
    data = read_conll(write(tmp_path, None, raw="\ufeffNew York\tNNP\tB-LOC\r\nis\tVBZ\tO\r\n\r\n".encode("utf-8")))
    assert data.sentences[0].tokens == ("New York", "is")
    assert data.sentences[0].tags == ("B-LOC", "O")


def test_empty_sentences_are_skipped_and_counted(tmp_path):
    data = read_conll(write(tmp_path, "\n\na O\n\n\n\nb B-PER\n\n\n-DOCSTART- O\n\nc O\n\n\n\n"))
    assert [s.tokens for s in data.sentences] == [("a",), ("b",), ("c",)]
    assert data.empty_skipped == 2  # the two extra blank lines between "a" and "b"; not file start/end


def test_malformed_line_names_file_and_line(tmp_path):
    p = write(tmp_path, "Peter B-PER\nBlackburn\nsaid O\n")
    with pytest.raises(ConllError, match=rf"^{p}:2: malformed line 'Blackburn': expected a token first"):
        read_conll(p)


def test_unknown_tag_scheme_names_file_and_line(tmp_path):
    p = write(tmp_path, "In O\nParis LOC\n")
    with pytest.raises(ConllError, match=rf"^{p}:2: unknown tag scheme: tag 'LOC' is in no known scheme"):
        read_conll(p)


def test_unrepairable_sequence_names_the_line_of_the_offending_tag(tmp_path):
    p = write(tmp_path, "Bonn S-LOC\n\nthe O\nNew B-LOC\nYork E-ORG\n")
    with pytest.raises(ConllError, match=rf"^{p}:5: tag sequence cannot be repaired \(BIOES file\): 'E-ORG' follows"):
        read_conll(p)


def test_every_problem_is_reported_up_to_five(tmp_path):
    p = write(tmp_path, "a\nb O\nc X-1\nd\n")
    with pytest.raises(ConllError) as e:
        read_conll(p)
    assert [part.split(": ")[0] for part in str(e.value).split("; ")] == [f"{p}:1", f"{p}:3", f"{p}:4"]


def test_not_utf8_and_missing_and_empty_files(tmp_path):
    p = write(tmp_path, None, raw=b"ok O\ncaf\xe9 O\n")
    with pytest.raises(ConllError, match=rf"^{p}:2: not UTF-8"):
        read_conll(p)
    with pytest.raises(ConllError, match="not found"):
        read_conll(tmp_path / "nope.conll")
    with pytest.raises(ConllError, match=r":1: no sentences found"):
        read_conll(write(tmp_path, "-DOCSTART- O\n\n\n", "empty.conll"))


def test_retokenize_cuts_like_the_pipeline_tokenizer_and_extends_entities():
    from pipelines.ner.conll import Sentence
    from pipelines.ner.train import retokenize
    from pipelines.text.tokens import TokenizerRules

    s = Sentence(("Dr.", "Weiß", "visited", "the", "U.S.", "and", "北京", "--"),
                 ("O", "B-PER", "O", "O", "B-LOC", "O", "B-LOC", "O"), 7)
    out = retokenize(s, TokenizerRules())
    assert list(zip(out.tokens, out.tags)) == [
        ("Dr", "O"), (".", "O"), ("Weiß", "B-PER"), ("visited", "O"), ("the", "O"), ("U.S", "B-LOC"),
        (".", "I-LOC"), ("and", "O"), ("北", "B-LOC"), ("京", "I-LOC"), ("--", "O")]
    assert out.line == 7
