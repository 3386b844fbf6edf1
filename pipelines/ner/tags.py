"""Tag schemes: parsing, conversion to IOB2, chunk extraction (Spark NLP's rules and seqeval's).

Two chunk readers on purpose:

- :func:`converter_chunks` is Spark NLP's NerConverter: a chunk opens at the first non-``O`` tag and
  closes at the next ``B-`` or ``O`` (so an ``I-`` without a ``B-`` opens one, and an ``I-`` of another
  type CONTINUES the open chunk, which keeps its first type). ``S-``/``E-`` (BIOES) are understood too:
  ``S-`` acts as ``B-`` and ends the chunk after its token, ``E-`` ends it after its token.
- :func:`entities` is the conlleval/seqeval reading used for metrics: a chunk also ends where the type
  changes. On valid IOB2 (what our tagger emits) both agree.
"""

from __future__ import annotations

import re

OUTSIDE = "O"
_TAG_RE = re.compile(r"^([BIESLU])-(.+)$")
# BILOU spells BIOES' E- and S- as L- and U-.
_PREFIX_ALIASES = {"L": "E", "U": "S"}


class TagError(ValueError):
    """A tag or a tag sequence that cannot be used; ``index`` is the position of the offending tag."""

    def __init__(self, message: str, index: int | None = None):
        super().__init__(message)
        self.index = index


def split_tag(tag: str) -> tuple[str, str | None]:
    """``"B-PER"`` -> ``("B", "PER")``, ``"O"`` -> ``("O", None)``; raises TagError for other shapes."""
    if tag == OUTSIDE:
        return OUTSIDE, None
    m = _TAG_RE.match(tag)
    if m is None or not m.group(2).strip():
        raise TagError(
            f"tag {tag!r} is in no known scheme: expected 'O' or PREFIX-TYPE with PREFIX one of B, I "
            "(IOB1/IOB2), E, S (BIOES) or L, U (BILOU), e.g. 'B-PER'"
        )
    prefix = m.group(1)
    return _PREFIX_ALIASES.get(prefix, prefix), m.group(2)


def detect_scheme(sequences) -> str:
    """'BIOES' when any E-/S- (or L-/U-) tag occurs; 'IOB2' when every I- continues a chunk; else 'IOB1'."""
    iob1 = False
    for tags in sequences:
        prev = (OUTSIDE, None)
        for tag in tags:
            prefix, kind = split_tag(tag)
            if prefix in ("E", "S"):
                return "BIOES"
            if prefix == "I" and not (prev[0] in ("B", "I") and prev[1] == kind):
                iob1 = True
            prev = (prefix, kind)
    return "IOB1" if iob1 else "IOB2"


def to_iob2(tags: list[str], scheme: str) -> list[str]:
    """Rewrite one sentence's tags as IOB2.

    IOB1/IOB2: an ``I-X`` that does not continue an ``X`` chunk starts one (``B-X``), as conlleval
    reads it. BIOES: ``S-``->``B-``, ``E-``->``I-``; a stray ``I-``/``E-`` starts a chunk and a chunk
    without its ``E-`` ends where its tags end; but an ``I-Y``/``E-Y`` inside an open ``X`` chunk is
    ambiguous (one entity of which type, or two?) and raises :class:`TagError` with its index.
    """
    out: list[str] = []
    open_kind: str | None = None  # type of the chunk the previous tag leaves open
    for i, tag in enumerate(tags):
        prefix, kind = split_tag(tag)
        if prefix == OUTSIDE:
            out.append(OUTSIDE)
            open_kind = None
            continue
        if scheme == "BIOES":
            if prefix in ("I", "E") and open_kind is not None and open_kind != kind:
                raise TagError(
                    f"{tag!r} follows {tags[i - 1]!r}: a BIOES {prefix}- tag must continue a chunk of the "
                    f"same type, and this sequence cannot be repaired without guessing (fix the tags of "
                    f"this entity)", i)
            if prefix in ("B", "S") or open_kind is None:
                out.append(f"B-{kind}")
            else:
                out.append(f"I-{kind}")
            open_kind = kind if prefix in ("B", "I") else None
        else:
            if prefix in ("E", "S"):
                raise TagError(f"tag {tag!r} is a BIOES tag in an IOB sequence", i)
            if prefix == "B" or open_kind != kind:
                out.append(f"B-{kind}")
            else:
                out.append(f"I-{kind}")
            open_kind = kind
    return out


def converter_chunks(tags: list[str]) -> list[tuple[int, int, str]]:
    """Spark NLP NerConverter's chunks: ``(first token, last token, entity)``; see the module doc."""
    chunks: list[tuple[int, int, str]] = []
    start, entity = -1, None
    for i, tag in enumerate(tags):
        prefix, kind = _loose_split(tag)
        if entity is not None and (prefix in ("B", "S") or prefix == OUTSIDE):
            chunks.append((start, i - 1, entity))
            entity = None
        if entity is None and prefix != OUTSIDE:
            start, entity = i, kind
        if entity is not None and prefix in ("E", "S"):
            chunks.append((start, i, entity))
            entity = None
    if entity is not None:
        chunks.append((start, len(tags) - 1, entity))
    return chunks


def _loose_split(tag: str) -> tuple[str, str]:
    """Like split_tag, but a tag of no scheme (``"PER"``) is its own entity type, continuing like ``I-``."""
    if tag == OUTSIDE or tag == "":
        return OUTSIDE, ""
    m = _TAG_RE.match(tag)
    if m is None:
        return "I", tag
    return _PREFIX_ALIASES.get(m.group(1), m.group(1)), m.group(2)


def entities(tags: list[str]) -> list[tuple[str, int, int]]:
    """conlleval/seqeval (default mode) chunks of an IOB sequence: ``(type, first, last)``."""
    out: list[tuple[str, int, int]] = []
    start, kind = -1, None
    for i, tag in enumerate(list(tags) + [OUTSIDE]):
        prefix, k = _loose_split(tag)
        ends = kind is not None and (prefix in ("O", "B", "S") or k != kind)
        if ends:
            out.append((kind, start, i - 1))
            kind = None
        if prefix != OUTSIDE and (kind is None or prefix in ("B", "S")):
            start, kind = i, k
        if kind is not None and prefix in ("E", "S"):
            out.append((kind, start, i))
            kind = None
    return out


def allowed_transitions(tags: list[str]) -> tuple[list[list[bool]], list[bool]]:
    """IOB2 constraints for the CRF: ``allowed[i][j]`` (tag i -> tag j) and ``allowed_start[j]``.

    ``I-X`` may only follow ``B-X`` or ``I-X``; every other transition is allowed.
    """
    parsed = [split_tag(t) for t in tags]
    allowed = [[not (pj == "I" and not (pi in ("B", "I") and ki == kj)) for pj, kj in parsed] for pi, ki in parsed]
    start = [p != "I" for p, _ in parsed]
    return allowed, start


def sorted_tag_set(tags) -> list[str]:
    """``O`` first, then per entity type (alphabetical) its ``B-`` and ``I-`` tags."""
    kinds = sorted({split_tag(t)[1] for t in tags if t != OUTSIDE})
    return [OUTSIDE] + [f"{p}-{k}" for k in kinds for p in ("B", "I")]
