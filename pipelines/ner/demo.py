"""A demo NER model: the tagger trained on the bundled multilingual NER sample (PER/LOC/ORG)."""

from __future__ import annotations

import os

from pipelines.ner.train import NerTrainResult, train_ner


def build_demo_ner(out_dir: str | os.PathLike[str], bundle_path: str | os.PathLike[str], *, epochs: int = 15,
                   log=print) -> NerTrainResult:
    """Train on ``pipelines/resources/ner_sample`` over the bundle's embeddings (~30-60 s on 2 cores)."""
    from pipelines.resources import ner_sample_dir

    sample = ner_sample_dir()
    return train_ner(sample / "train.conll", sample / "dev.conll", bundle_path, out_dir, epochs,
                     batch_size=16, learning_rate=5e-3, log=log)
