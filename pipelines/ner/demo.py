"""A demo NER model: a linear-chain CRF over the demo BERT's embeddings, trained with NumPy on the bundled
multilingual NER sample (PER/LOC/ORG). No PyTorch: `make demo` does not install it (see pipelines.ner.linear)."""

from __future__ import annotations

import os

from pipelines.ner.train import NerTrainResult


def build_demo_ner(out_dir: str | os.PathLike[str], bundle_path: str | os.PathLike[str], *, epochs: int = 20,
                   log=print) -> NerTrainResult:
    """Train on ``pipelines/resources/ner_sample`` over the bundle's embeddings; deterministic (the same
    bundle gives the same ``tagger.onnx`` and ``metrics.json``)."""
    from pipelines.ner.linear import train_linear_ner
    from pipelines.resources import ner_sample_dir

    sample = ner_sample_dir()
    return train_linear_ner(sample / "train.conll", sample / "dev.conll", bundle_path, out_dir, epochs, log=log)
