"""What Spark NLP 5.5.3's BERT annotators lose inside a token (README "Differences"), for the tests that
compare them with ours: only where nothing is lost do both models see the same WordPieces."""

from __future__ import annotations

import unicodedata


def spark_nlp_loses_part_of(token: str, tokenizer) -> bool:
    """Spark NLP's known losses inside one token: it keeps only the first word BERT's
    basic tokenizer cuts the token into ("south-west" -> "south", a CJK run -> its first character), and it
    strips accents whatever the casing (NFD, then no combining marks: "Für" -> "Fur", Hangul -> jamo)."""
    words = tokenizer.pre_tokenizer.pre_tokenize_str(tokenizer.normalizer.normalize_str(token))
    stripped = "".join(c for c in unicodedata.normalize("NFD", token) if unicodedata.category(c) != "Mn")
    return len(words) != 1 or stripped != token
