"""Where corpus-nlp keeps what it can rebuild: model file digests, the JVM class archive."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$CORPUS_NLP_CACHE_DIR``, else ``$XDG_CACHE_HOME/corpus-nlp`` (``~/.cache/corpus-nlp``)."""
    explicit = os.environ.get("CORPUS_NLP_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "corpus-nlp"
