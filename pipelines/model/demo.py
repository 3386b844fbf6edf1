"""Random-weight demo models, built through the real checkpoint -> bundle path.

``build_demo_model``: a tiny BERT (2 layers, 128 hidden) for demos and tests.
``build_mbert_shaped_random_model``: the exact bert-base-multilingual-cased shape
(12 layers, 768 hidden, 12 heads, 3072 intermediate, 512 positions, 119,547
vocab) for speed work; its embeddings carry no meaning either.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from .bundle import CHECKPOINT_DIR, ModelBundle

DEMO_SHAPE = dict(num_layers=2, hidden_size=128, num_heads=4, intermediate_size=512,
                  max_position_embeddings=512)
MBERT_SHAPE = dict(num_layers=12, hidden_size=768, num_heads=12, intermediate_size=3072,
                   max_position_embeddings=512)
MBERT_VOCAB_SIZE = 119_547

SAMPLE_CORPUS_DIR = Path(__file__).resolve().parent.parent / "resources" / "sample_corpus"

FALLBACK_TEXTS = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Barack Obama was born in Honolulu, Hawaii, and served as President of the United States.",
    "Angela Merkel war von 2005 bis 2021 Bundeskanzlerin der Bundesrepublik Deutschland.",
    "Größere Straßen führen über die Brücke nach Köln und Düsseldorf.",
    "Le président de la République française réside au palais de l'Élysée à Paris.",
    "Où est la bibliothèque? Elle est à côté de l'église, près du café.",
    "El río Amazonas atraviesa Perú, Colombia y Brasil antes de llegar al océano Atlántico.",
    "¿Dónde está la estación de tren? Mañana viajaré a Sevilla con mi niña.",
    "Il Colosseo si trova a Roma ed è uno dei monumenti più famosi d'Italia.",
    "A Torre de Belém fica em Lisboa, às margens do rio Tejo.",
    "Het Rijksmuseum in Amsterdam toont schilderijen van Rembrandt en Vermeer.",
    "Stockholm är Sveriges huvudstad och ligger vid Mälaren och Östersjön.",
    "Warszawa jest stolicą Polski, a Wisła przepływa przez miasto.",
    "Praha je hlavní město České republiky a leží na řece Vltavě.",
    "İstanbul, Boğaziçi'nin iki yakasında kurulmuş büyük bir şehirdir.",
    "Москва — столица России, а Санкт-Петербург стоит на Неве.",
    "Київ розташований на берегах Дніпра.",
    "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας και έχει την Ακρόπολη.",
    "القاهرة هي عاصمة مصر وتقع على ضفاف نهر النيل.",
    "ירושלים היא עיר עתיקה בישראל.",
    "नई दिल्ली भारत की राजधानी है और यमुना नदी के किनारे स्थित है।",
    "ঢাকা বাংলাদেশের রাজধানী।",
    "北京是中华人民共和国的首都，长城位于北京北部。",
    "東京は日本の首都で、富士山は静岡県と山梨県にまたがっています。",
    "서울은 대한민국의 수도이며 한강이 도시를 가로지릅니다.",
    "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย",
    "Hà Nội là thủ đô của Việt Nam, nằm bên sông Hồng.",
    "Jakarta adalah ibu kota Indonesia yang terletak di pulau Jawa.",
    "Nairobi ni mji mkuu wa Kenya.",
    "Prices rose 3.5% in 2023; the CEO (Jane Doe) said: \"We're fine!\" #growth @company 🙂",
]


def _read_sample_corpus(root: Path = SAMPLE_CORPUS_DIR) -> list[str]:
    if not root.is_dir():
        return []
    files = sorted(root.glob("lang=*/*.parquet"))
    if not files:
        return []
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return []
    texts: list[str] = []
    for f in files:
        try:
            col = pq.read_table(f, columns=["text"]).column("text")
        except Exception:
            continue  # a file being written right now, or without a text column
        texts.extend(t for t in col.to_pylist() if isinstance(t, str) and t)
    return texts


def default_texts() -> list[str]:
    """The bundled sample corpus' texts, or built-in multilingual sentences."""
    texts = _read_sample_corpus()
    return texts + FALLBACK_TEXTS if texts else list(FALLBACK_TEXTS)


def build_demo_model(
    out_dir: str | os.PathLike[str],
    texts: Iterable[str] | None = None,
    *,
    seed: int = 0,
    vocab_size: int = 8000,
) -> ModelBundle:
    """Train a WordPiece vocab, write a random 2-layer BERT checkpoint to
    ``out_dir/checkpoint/`` and convert it into the bundle ``out_dir`` (kind "demo")."""
    from .checkpoint import train_wordpiece_tokenizer, write_random_checkpoint
    from .prepare import prepare_model

    out = Path(out_dir)
    corpus = list(texts) if texts is not None else default_texts()
    corpus = [t for t in corpus if isinstance(t, str) and t.strip()] or list(FALLBACK_TEXTS)
    tok = train_wordpiece_tokenizer(corpus, vocab_size=vocab_size, cased=True)
    ckpt = write_random_checkpoint(out / CHECKPOINT_DIR, tok, seed=seed, name="demo-bert", **DEMO_SHAPE)
    return prepare_model(out, from_dir=ckpt, kind="demo", name="demo-bert")


def pad_vocab_tokenizer(tok, target_size: int):
    """A copy of WordPiece tokenizer ``tok`` whose vocab is padded to exactly ``target_size``
    with unique never-matching filler pieces (``[unused<i>]``-style, appended at the end)."""
    import json

    from tokenizers import Tokenizer

    spec = json.loads(tok.to_str())
    vocab: dict[str, int] = spec["model"]["vocab"]
    n = len(vocab)
    if n > target_size:
        raise ValueError(f"vocab already has {n} > {target_size} entries")
    i = 0
    while n < target_size:
        piece = f"[unused{i}]"
        i += 1
        if piece in vocab:
            continue
        vocab[piece] = n
        n += 1
    return Tokenizer.from_str(json.dumps(spec))


def build_mbert_shaped_random_model(
    out_dir: str | os.PathLike[str],
    texts: Iterable[str] | None = None,
    precision: Literal["fp32", "int8"] = "fp32",
    *,
    seed: int = 0,
) -> ModelBundle:
    """A random-weight model with the exact bert-base-multilingual-cased shape (for benchmarks)."""
    from .checkpoint import train_wordpiece_tokenizer, write_random_checkpoint
    from .prepare import prepare_model

    out = Path(out_dir)
    corpus = list(texts) if texts is not None else default_texts()
    corpus = [t for t in corpus if isinstance(t, str) and t.strip()] or list(FALLBACK_TEXTS)
    tok = train_wordpiece_tokenizer(corpus, vocab_size=MBERT_VOCAB_SIZE, cased=True)
    tok = pad_vocab_tokenizer(tok, MBERT_VOCAB_SIZE)
    ckpt = write_random_checkpoint(out / CHECKPOINT_DIR, tok, seed=seed, name="mbert-shaped-random",
                                   **MBERT_SHAPE)
    return prepare_model(out, from_dir=ckpt, kind="demo", precision=precision, name="mbert-shaped-random")
