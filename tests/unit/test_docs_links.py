"""Every link between the README, the docs/ pages and the repository's files leads somewhere: the file
exists, and the heading a ``#fragment`` names is on that page."""

from urllib.parse import unquote, urlparse

import pytest
from markdown_doc import PAGES, ROOT, anchors, links


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_exists(page):
    broken = []
    for href in links(page):
        url = urlparse(href)
        if url.scheme or url.netloc:  # the web: not checked (no network in the tests)
            continue
        target = (page.parent / unquote(url.path)).resolve() if url.path else page
        if not target.exists():
            broken.append(f"{href}: no file {target}")
        elif url.fragment and target.suffix == ".md" and url.fragment not in anchors(target):
            broken.append(f"{href}: no heading #{url.fragment} in {target.relative_to(ROOT)}")
    assert broken == []


def test_every_docs_page_is_reachable_from_the_index():
    index = {unquote(urlparse(h).path) for h in links(ROOT / "docs" / "README.md")}
    assert {p.name for p in PAGES if p.parent.name == "docs" and p.name != "README.md"} <= index


def test_the_readme_stays_a_first_hour_page():
    """What it is, set up, one example per way to run, where to read more: the reference lives in docs/."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 120
