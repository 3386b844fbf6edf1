"""The README and docs/ as markdown-it (CommonMark) reads them: links, heading anchors, code blocks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int  # 1-based, the opening fence


def _tokens(page: Path):
    return MarkdownIt("commonmark").enable("table").parse(page.read_text(encoding="utf-8"))


def code_blocks(page: Path) -> list[Block]:
    return [Block(t.info.strip(), t.content, t.map[0] + 1) for t in _tokens(page) if t.type == "fence"]


def links(page: Path) -> list[str]:
    """Every link target of the page (inline code and code blocks are not links)."""
    found = []
    for t in _tokens(page):
        for child in t.children or []:
            if child.type == "link_open":
                found.append(child.attrGet("href"))
    return found


def anchors(page: Path) -> set[str]:
    """The ids GitHub gives the page's headings: lower case, punctuation other than ``-`` and ``_``
    dropped, spaces as ``-``; a repeated heading gets ``-1``, ``-2``, ..."""
    tokens, seen, ids = _tokens(page), {}, set()
    for opening, inline in zip(tokens, tokens[1:]):
        if opening.type != "heading_open":
            continue
        text = "".join(c.content for c in inline.children if c.type in ("text", "code_inline"))
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        ids.add(slug if n == 0 else f"{slug}-{n}")
    return ids
