"""CoNLL reader: token first, tag last, a blank line between sentences; IOB1, IOB2 or BIOES -> IOB2.

Columns are separated by tabs when the line has a tab (so a token may then contain spaces), else by
runs of spaces. ``-DOCSTART-`` lines separate documents and are not sentences. Any language: the file
is UTF-8 (a BOM is allowed). Errors are :class:`ConllError` and start with ``file:line:``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.errors import CorpusNlpError
from pipelines.ner.tags import TagError, detect_scheme, split_tag, to_iob2

DOCSTART = "-DOCSTART-"
_SPACES = re.compile(r" +")
_MAX_REPORTED = 5


class ConllError(CorpusNlpError, ValueError):
    """A CoNLL file that cannot be read; the message starts with ``file:line:`` of each problem."""


@dataclass(frozen=True)
class Sentence:
    tokens: tuple[str, ...]
    tags: tuple[str, ...]  # IOB2
    line: int  # line of the first token (1-based)


@dataclass
class ConllData:
    path: str
    sentences: list[Sentence]
    scheme: str  # the scheme the file was written in: IOB1, IOB2 or BIOES
    retagged: int = 0  # tags rewritten to make the sentences IOB2
    empty_skipped: int = 0  # empty sentences (extra blank lines) skipped
    documents: int = 0  # -DOCSTART- lines
    tag_counts: Counter = field(default_factory=Counter)

    @property
    def tokens(self) -> int:
        return sum(len(s.tokens) for s in self.sentences)

    def summary(self) -> str:
        kinds = sorted({t[2:] for t in self.tag_counts if t != "O"})
        return (f"{self.path}: {len(self.sentences)} sentences, {self.tokens} tokens, scheme {self.scheme}"
                f"{f' ({self.retagged} tags rewritten to IOB2)' if self.retagged else ''}, entity types "
                f"{', '.join(kinds) or 'none'}"
                f"{f', {self.empty_skipped} empty sentences skipped' if self.empty_skipped else ''}")


def _columns(line: str) -> list[str]:
    if "\t" in line:
        return [c.strip(" ") for c in line.strip("\t ").split("\t")]
    return _SPACES.split(line.strip(" "))


def read_conll(path: str | os.PathLike[str]) -> ConllData:
    """Read one CoNLL file; raises ConllError naming ``file:line`` of every problem (up to five)."""
    p = Path(path)
    if not p.is_file():
        raise ConllError(f"{p}: CoNLL file not found")
    raw = p.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    problems: list[str] = []

    def problem(lineno: int, message: str) -> None:
        problems.append(f"{p}:{lineno}: {message}")

    sentences: list[tuple[list[str], list[str], list[int]]] = []
    tokens: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    empty = pending_empty = documents = 0
    after_boundary = True  # a blank line here ends no sentence (file start, after -DOCSTART-)

    def close() -> None:
        nonlocal tokens, tags, lines
        if tokens:
            sentences.append((tokens, tags, lines))
        tokens, tags, lines = [], [], []

    parts = raw.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()  # the file's final newline
    for lineno, bline in enumerate(parts, start=1):
        try:
            line = bline.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as e:
            problem(lineno, f"not UTF-8 ({e.reason} at byte {e.start} of the line); save the file as UTF-8")
            continue
        if not line.strip(" \t\f\v"):
            if tokens:
                close()
                after_boundary = False
            elif not after_boundary:
                pending_empty += 1  # counted once a sentence follows (not at the end of a document)
            continue
        cols = _columns(line)
        if cols[0] == DOCSTART:
            close()
            documents += 1
            after_boundary = True
            pending_empty = 0
            continue
        after_boundary = False
        empty += pending_empty
        pending_empty = 0
        if len(cols) < 2 or not cols[0] or not cols[-1]:
            problem(lineno, f"malformed line {line!r}: expected a token first and its tag last, separated by "
                            "spaces or a tab, with a blank line between sentences")
            continue
        try:
            split_tag(cols[-1])
        except TagError as e:
            problem(lineno, f"unknown tag scheme: {e}")
            continue
        tokens.append(cols[0])
        tags.append(cols[-1])
        lines.append(lineno)
        if len(problems) >= _MAX_REPORTED:
            break
    close()
    if problems:
        raise ConllError("; ".join(problems[:_MAX_REPORTED]))

    scheme = detect_scheme(s[1] for s in sentences)
    out: list[Sentence] = []
    retagged = 0
    counts: Counter = Counter()
    for toks, tgs, lns in sentences:
        try:
            iob2 = to_iob2(tgs, scheme)
        except TagError as e:
            problems.append(f"{p}:{lns[e.index]}: tag sequence cannot be repaired ({scheme} file): {e}")
            if len(problems) >= _MAX_REPORTED:
                break
            continue
        retagged += sum(a != b for a, b in zip(tgs, iob2))
        counts.update(iob2)
        out.append(Sentence(tuple(toks), tuple(iob2), lns[0]))
    if problems:
        raise ConllError("; ".join(problems))
    if not out:
        raise ConllError(f"{p}:1: no sentences found (expected lines 'TOKEN ... TAG' with blank lines between "
                         "sentences)")
    return ConllData(str(p), out, scheme, retagged, empty, documents, counts)


def write_conll(path: str | os.PathLike[str], sentences) -> None:
    """Write ``(tokens, tags)`` pairs as a two-column, tab-separated CoNLL file."""
    with open(path, "w", encoding="utf-8") as f:
        for toks, tgs in sentences:
            for t, g in zip(toks, tgs):
                f.write(f"{t}\t{g}\n")
            f.write("\n")
