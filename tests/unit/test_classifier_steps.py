"""TokenClassifier / SequenceClassifier (no Spark): logits equal Hugging Face's; long text through windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from classifier_checkpoints import NER_LABELS, SENTIMENT_LABELS, TEXTS, hf_model, wordpiece_tokenizer, \
    write_classifier_checkpoint
from pipelines.classify.classifier import SequenceClassifier, TokenClassifier, softmax
from pipelines.classify.steps import group_by_span, java_float
from pipelines.annotation import Ann
from pipelines.model.prepare import prepare_model

torch = pytest.importorskip("torch")

SENTENCES = [t.split() for t in TEXTS[:8]]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, tuple[Path, object]]:
    tok = wordpiece_tokenizer()
    root = tmp_path_factory.mktemp("classifiers")
    out = {}
    for arch, labels in (("BertForTokenClassification", NER_LABELS),
                         ("DistilBertForSequenceClassification", SENTIMENT_LABELS)):
        ckpt = write_classifier_checkpoint(root / arch, arch, labels, tok, seed=11)
        out[arch] = (ckpt, prepare_model(root / f"{arch}-bundle", from_dir=ckpt))
    return out


def _hf_logits(ckpt: Path, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        return hf_model(ckpt)(input_ids=torch.tensor([ids])).logits[0].numpy()


def test_token_logits_are_the_first_pieces_logits_of_transformers(models):
    ckpt, bundle = models["BertForTokenClassification"]
    classifier = TokenClassifier(bundle.create_session(), bundle.load_tokenizer())
    cls, sep = classifier.cls_id, classifier.sep_id
    worst = 0.0
    for words, logits, (ids, owners) in zip(SENTENCES, classifier.logits(SENTENCES), classifier.pieces(SENTENCES)):
        theirs = _hf_logits(ckpt, [cls, *ids.tolist(), sep])[1:-1]
        first = np.searchsorted(owners, np.arange(len(words)))  # first piece of each word
        assert logits.shape == (len(words), len(NER_LABELS))
        worst = max(worst, float(np.abs(logits - theirs[first]).max()))
        assert (logits.argmax(1) == theirs[first].argmax(1)).all()
    assert worst <= 1e-4


def test_long_sentence_every_token_labelled_from_its_best_window(models):
    ckpt, bundle = models["BertForTokenClassification"]
    words = " ".join(TEXTS[:6]).split()  # ~55 words, 65 pieces: three windows of 22
    short = TokenClassifier(bundle.create_session(), bundle.load_tokenizer(), max_sentence_length=24)
    (ids, owners), = short.pieces([words])
    assert len(ids) > 2 * 22
    logits, = short.logits([words])
    assert logits.shape == (len(words), len(NER_LABELS)) and np.isfinite(logits).all()
    # A token well inside the first window has (nearly) the same context there as in HF on that window.
    window = [short.cls_id, *ids[:22].tolist(), short.sep_id]
    theirs = _hf_logits(ckpt, window)[1:-1]
    assert np.abs(logits[0] - theirs[0]).max() <= 1e-4


def test_sequence_probabilities_and_the_window_rule(models):
    ckpt, bundle = models["DistilBertForSequenceClassification"]
    classifier = SequenceClassifier(bundle.create_session(), bundle.load_tokenizer())
    for words, probs, (ids, _) in zip(SENTENCES, classifier.probabilities(SENTENCES), classifier.pieces(SENTENCES)):
        theirs = _hf_logits(ckpt, [classifier.cls_id, *ids.tolist(), classifier.sep_id])
        assert np.abs(probs - softmax(theirs)).max() <= 1e-5

    # A document longer than the window: every window goes through the model (HF on the same pieces), and the
    # result is the mean of the windows' probabilities weighted by their length.
    long_doc = " ".join(TEXTS[:6]).split()
    short = SequenceClassifier(bundle.create_session(), bundle.load_tokenizer(), max_sentence_length=32)
    (ids, _), = short.pieces([long_doc])
    windows, = short.window_logits([long_doc])
    assert len(windows) >= 3
    covered = np.zeros(len(ids), bool)
    expected, total = np.zeros(len(SENTIMENT_LABELS)), 0
    for start, n, logits in windows:
        theirs = _hf_logits(ckpt, [short.cls_id, *ids[start:start + n].tolist(), short.sep_id])
        assert np.abs(logits - theirs).max() <= 1e-4
        covered[start:start + n] = True
        expected += n * softmax(theirs)
        total += n
    assert covered.all()  # no piece left out
    probs, = short.probabilities([long_doc])
    assert np.abs(probs - expected / total).max() <= 1e-5


def test_group_by_span_keeps_every_token():
    doc = [Ann("document", 0, 9, "aaaa bbbb."), Ann("document", 11, 14, "cccc")]
    tokens = [Ann("token", 0, 3, "aaaa", {"sentence": "0"}), Ann("token", 5, 9, "bbbb.", {"sentence": "0"}),
              Ann("token", 11, 14, "cccc", {"sentence": "1"}), Ann("token", 20, 22, "ddd", {"sentence": "7"})]
    groups = group_by_span(doc, tokens)
    assert [(b, e, s, [t.result for t in ts]) for b, e, s, ts in groups] == [
        (0, 9, "0", ["aaaa", "bbbb."]), (11, 14, "1", ["cccc"]), (20, 22, "7", ["ddd"])]


@pytest.mark.parametrize("value, java", [(0.25, "0.25"), (1.0, "1.0"), (0.0, "0.0"), (1.2345e-4, "1.2345E-4"),
                                         (0.001, "0.001"), (3.0e-8, "3.0E-8")])
def test_scores_are_written_as_java_floats(value, java):
    assert java_float(value) == java
