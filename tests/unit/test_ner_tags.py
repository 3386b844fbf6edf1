"""NER tag schemes, NerConverter's chunk rules, entity metrics and Viterbi: hand-written expectations."""

import itertools

import numpy as np
import pytest

from pipelines.annotation import Ann
from pipelines.ner.metrics import entity_scores
from pipelines.ner.model import viterbi
from pipelines.ner.steps import ConverterStep
from pipelines.ner.tags import (TagError, allowed_transitions, converter_chunks, detect_scheme, entities,
                                sorted_tag_set, to_iob2)


@pytest.mark.parametrize("tags, chunks", [
    ([], []),
    (["O", "O"], []),
    (["B-PER", "I-PER", "O", "B-LOC"], [(0, 1, "PER"), (3, 3, "LOC")]),
    (["B-PER", "I-PER"], [(0, 1, "PER")]),                              # closes at the end
    (["I-PER", "I-PER", "O"], [(0, 1, "PER")]),                         # I- without B- opens a chunk
    (["O", "I-ORG", "B-ORG", "I-ORG"], [(1, 1, "ORG"), (2, 3, "ORG")]),  # IOB1: B- closes and opens
    (["B-PER", "B-PER"], [(0, 0, "PER"), (1, 1, "PER")]),
    (["B-PER", "I-LOC", "O"], [(0, 1, "PER")]),                         # Spark NLP: only B-/O close a chunk
    (["S-PER", "B-LOC", "E-LOC", "S-ORG"], [(0, 0, "PER"), (1, 2, "LOC"), (3, 3, "ORG")]),  # BIOES
    (["E-PER", "I-PER"], [(0, 0, "PER"), (1, 1, "PER")]),               # E- ends its chunk
    (["U-LOC", "O", "B-ORG", "L-ORG"], [(0, 0, "LOC"), (2, 3, "ORG")]),  # BILOU spelling
    (["PER", "PER", "O"], [(0, 1, "PER")]),                             # tags of no scheme: their own type
])
def test_converter_chunks_follow_spark_nlp_rules(tags, chunks):
    assert converter_chunks(tags) == chunks


def test_seqeval_entities_also_split_where_the_type_changes():
    assert entities(["B-PER", "I-LOC", "O"]) == [("PER", 0, 0), ("LOC", 1, 1)]
    assert entities(["I-PER", "I-PER", "B-PER", "O", "I-LOC"]) == [("PER", 0, 1), ("PER", 2, 2), ("LOC", 4, 4)]
    assert entities(["S-PER", "B-ORG", "I-ORG", "E-ORG"]) == [("PER", 0, 0), ("ORG", 1, 3)]


@pytest.mark.parametrize("scheme, tags, iob2", [
    ("IOB1", ["I-PER", "I-PER", "O", "I-LOC", "B-LOC"], ["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]),
    ("IOB2", ["B-PER", "I-PER", "O", "B-LOC", "B-LOC"], ["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]),
    ("IOB1", ["B-PER", "I-LOC"], ["B-PER", "B-LOC"]),  # conlleval reading of a type change
    ("BIOES", ["S-PER", "O", "B-ORG", "I-ORG", "E-ORG", "S-LOC", "S-LOC"],
     ["B-PER", "O", "B-ORG", "I-ORG", "I-ORG", "B-LOC", "B-LOC"]),
    ("BIOES", ["O", "E-PER", "I-LOC", "E-LOC"], ["O", "B-PER", "B-LOC", "I-LOC"]),  # stray E-/I- start chunks
    ("BIOES", ["S-LOC", "B-PER", "I-PER", "O"], ["B-LOC", "B-PER", "I-PER", "O"]),  # missing E-: ends with its tags
])
def test_schemes_convert_to_iob2(scheme, tags, iob2):
    assert detect_scheme([tags]) == scheme
    assert to_iob2(tags, scheme) == iob2


def test_bioes_type_conflict_inside_a_chunk_cannot_be_repaired():
    with pytest.raises(TagError, match=r"'E-LOC' follows 'B-PER'.*cannot be repaired") as e:
        to_iob2(["O", "B-PER", "E-LOC"], "BIOES")
    assert e.value.index == 2


def test_tag_set_order_and_iob2_constraints():
    tags = sorted_tag_set(["O", "I-PER", "B-LOC", "B-PER"])
    assert tags == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    allowed, start = allowed_transitions(tags)
    assert start == [True, True, False, True, False]
    assert allowed[0] == [True, True, False, True, False]          # O -> I-x forbidden
    assert allowed[1] == [True, True, True, True, False]           # B-LOC -> I-LOC ok, -> I-PER not
    assert allowed[4] == [True, True, False, True, True]           # I-PER -> I-PER ok


def test_entity_scores_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "B-LOC"]]
    s = entity_scores(gold, pred)
    assert s["labels"]["PER"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert s["labels"]["LOC"] == {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "support": 1}
    assert s["labels"]["ORG"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert s["micro"] == {"precision": 0.5, "recall": 0.6667, "f1": 0.5714, "support": 3}
    assert s["token_accuracy"] == round(4 / 6, 4)


def test_viterbi_finds_the_best_path_by_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        k, t = 4, int(rng.integers(1, 6))
        em, tr, st, en = rng.normal(size=(t, k)), rng.normal(size=(k, k)), rng.normal(size=k), rng.normal(size=k)
        score = lambda p: st[p[0]] + en[p[-1]] + sum(em[i, p[i]] for i in range(t)) + sum(  # noqa: E731
            tr[p[i - 1], p[i]] for i in range(1, t))
        best = max(itertools.product(range(k), repeat=t), key=score)
        assert viterbi(em, tr, st, en) == list(best)
    assert viterbi(np.zeros((0, 3)), np.zeros((3, 3)), np.zeros(3), np.zeros(3)) == []


def _ner(tags, words, sentence, begins, confidences=None):
    out = []
    for i, (tag, w, b) in enumerate(zip(tags, words, begins)):
        meta = {"word": w, "sentence": sentence}
        if confidences:
            meta["confidence"] = str(confidences[i])
        out.append(Ann("named_entity", b, b + len(w) - 1, tag, meta))
    return out


def test_converter_step_offsets_text_metadata_and_white_list():
    text = "Anna Maria Weber flew to New York. Acme Corp paid."
    s0, s1 = Ann("document", 0, 33, text[:34], {"sentence": "0"}), Ann("document", 35, 49, text[35:], {"sentence": "1"})
    words0 = ["Anna", "Maria", "Weber", "flew", "to", "New", "York", "."]
    begins0 = [0, 5, 11, 17, 22, 25, 29, 33]
    words1, begins1 = ["Acme", "Corp", "paid", "."], [35, 40, 45, 49]
    ner = (_ner(["B-PER", "I-PER", "I-PER", "O", "O", "I-LOC", "I-LOC", "O"], words0, "0", begins0,
                [0.9, 0.8, 0.7, 1, 1, 0.6, 0.5, 1])
           + _ner(["B-ORG", "I-ORG", "O", "O"], words1, "1", begins1, [0.5, 0.25, 1, 1]))
    batch = {"sentence": [[s0, s1]], "token": [[]], "ner": [ner]}
    chunks = ConverterStep("sentence", "token", "ner", "ner_chunk").apply(batch)[0]
    assert [(c.annotatorType, c.begin, c.end, c.result, c.metadata) for c in chunks] == [
        ("chunk", 0, 15, "Anna Maria Weber", {"entity": "PER", "sentence": "0", "chunk": "0", "confidence": "0.8"}),
        ("chunk", 25, 32, "New York", {"entity": "LOC", "sentence": "0", "chunk": "1", "confidence": "0.55"}),
        ("chunk", 35, 43, "Acme Corp", {"entity": "ORG", "sentence": "1", "chunk": "2", "confidence": "0.375"}),
    ]
    for c in chunks:
        assert text[c.begin : c.end + 1] == c.result
    only_org = ConverterStep("sentence", "token", "ner", "ner_chunk", ("ORG",)).apply(batch)[0]
    assert [(c.result, c.metadata["chunk"]) for c in only_org] == [("Acme Corp", "0")]
    no_conf = [Ann(a.annotatorType, a.begin, a.end, a.result, {"word": a.metadata["word"], "sentence": "1"})
               for a in ner[8:]]
    plain = ConverterStep("sentence", "token", "ner", "ner_chunk").apply(
        {"sentence": [[s0, s1]], "token": [[]], "ner": [no_conf]})[0]
    assert [c.metadata for c in plain] == [{"entity": "ORG", "sentence": "1", "chunk": "0"}]
