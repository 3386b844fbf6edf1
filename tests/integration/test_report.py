"""`corpus-nlp report LAKE`: one self-contained HTML page over a real lake, opened in a real headless Chromium.

The lake is the job run the job tests share (conftest ``first_run``), copied, plus a second run of one
partition, so that the page has two runs and ``--run`` has something to leave out.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import matplotlib
import pytest
from click.testing import CliRunner
from lake_helpers import files_per_partition, job_config, read_table, write_corpus
from PIL import Image
from pyspark.sql import functions as F

from pipelines.tools.cli import main
from pipelines.errors import JobError
from pipelines.run.job import run_annotate

MATPLOTLIB_BLUE = (0x1F, 0x77, 0xB4)  # the first colour of matplotlib's cycle: the bars and histograms


class Page(HTMLParser):
    """What a reader sees: title, headings, table rows, images, and every URL-bearing attribute."""

    def __init__(self, text: str):
        super().__init__()
        self.title, self.headings, self.rows, self.images, self.urls, self.scripts = "", [], [], [], [], 0
        self._in, self._row = None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.urls += [v for k, v in attrs.items() if k in ("src", "href", "data", "action", "poster") and v]
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "script":
            self.scripts += 1
        elif tag == "tr":
            self._row = []
        elif tag in ("title", "h1", "h2", "td"):
            self._in = tag
            if tag == "td":
                self._row.append("")
            elif tag != "title":
                self.headings.append("")

    def handle_endtag(self, tag):
        if tag == "tr" and self._row:
            self.rows.append(tuple(self._row))
        if tag == self._in:
            self._in = None

    def handle_data(self, data):
        if self._in == "title":
            self.title += data
        elif self._in in ("h1", "h2"):
            self.headings[-1] += data
        elif self._in == "td":
            self._row[-1] += data


@pytest.fixture(scope="module")
def two_run_lake(spark, tmp_path_factory, first_run, corpus_dir, demo_bundle):
    """first_run's lake, then a second run that redoes the zh partition only."""
    lake = tmp_path_factory.mktemp("report") / "lake"
    shutil.copytree(Path(first_run.tables["token_embeddings"]).parent, lake)
    second = run_annotate(job_config(lake, corpus_dir, demo_bundle.path, partitions=["lang=zh"]), spark=spark)
    return lake, first_run.run_id, second.run_id


@pytest.fixture(scope="module")
def whole_lake_report(spark, two_run_lake, tmp_path_factory):
    """The page over the whole lake (the CLI's output, the page's path, the page)."""
    out = tmp_path_factory.mktemp("report-page") / "report.html"
    return (*report(spark, two_run_lake[0], out), out)


def report(spark, lake: Path, out: Path, *args: str) -> tuple[str, Page]:
    result = CliRunner().invoke(main, ["report", str(lake), "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    return result.output, Page(text)


def chromium() -> str:
    found = os.environ.get("CORPUS_NLP_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CORPUS_NLP_NO_BROWSER"):
        pytest.skip("no Chromium and CORPUS_NLP_NO_BROWSER is set")
    pytest.fail("Chromium is not installed (Debian: apt-get install -y chromium; .ci/run installs it): the report "
                "test opens the page in it. Set CORPUS_NLP_NO_BROWSER=1 to skip this test locally.")


def headless(browser: str, *args: str) -> subprocess.CompletedProcess:
    # --no-sandbox: CI runs as root; --disable-dev-shm-usage: containers have a small /dev/shm
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--hide-scrollbars", *args], capture_output=True, text=True, check=True)


def test_the_page_shows_the_lake_and_needs_nothing_from_the_network(spark, two_run_lake, whole_lake_report):
    lake, first, second = two_run_lake
    output, page, out = whole_lake_report

    assert page.title == f"corpus-nlp report: {lake}" and page.scripts == 0
    # self-contained: every image is an SVG inside the page, no URL leads anywhere
    assert page.urls and all(u.startswith("data:image/svg+xml;base64,") for u in page.urls), page.urls
    assert not re.search(r"(src|href)\s*=\s*['\"]?\s*(https?:)?//", out.read_text())
    for uri in page.images:
        assert base64.b64decode(uri.split(",", 1)[1]).lstrip().startswith(b"<?xml")
    for heading in ("Runs", "Documents and tokens per partition", "Quarantine reasons", "Sentence and document lengths",
                    "Windows and padding", "Throughput over time", "Data files"):
        assert heading in page.headings
    assert len(page.images) == 7  # documents, tokens, quarantine, 2 histograms, padding, throughput

    # the numbers are the lake's, counted here another way
    tokens = read_table(spark, lake / "token_embeddings")
    for r in tokens.groupBy("lang").agg(F.countDistinct("doc_id").alias("docs"), F.count("*").alias("n")).collect():
        assert (f"lang={r['lang']}", str(r["docs"]), str(r["n"])) in page.rows
    for r in read_table(spark, lake / "quarantine").groupBy("reason").count().collect():
        assert (r["reason"], str(r["count"])) in page.rows
    assert {row[0] for row in page.rows if row[0] in (first, second)} == {first, second}
    files = files_per_partition(spark, lake / "token_embeddings")  # the table's current files, counted here
    assert (f"token_embeddings: {len(files)} partitions, {sum(map(len, files.values()))} files (at most "
            f"{max(map(len, files.values()))} in a partition)") in output and len(files) == 3


def test_run_restricts_the_page_to_that_runs_rows_and_manifest(spark, two_run_lake, tmp_path):
    lake, first, second = two_run_lake
    _, page = report(spark, lake, tmp_path / "second.html", "--run", second)
    runs = {row[0] for row in page.rows if row[0] in (first, second)}
    partitions = {row[0] for row in page.rows if row[0].startswith("lang=")}
    assert runs == {second} and partitions == {"lang=zh"}
    assert "Quarantine reasons" in page.headings and ("null_text", "1") not in page.rows  # run 2 quarantined none

    missing = CliRunner().invoke(main, ["report", str(lake), "--run", "no-such-run", "--out", str(tmp_path / "x")])
    assert missing.exit_code != 0 and "no run no-such-run" in missing.output and "Traceback" not in missing.output


def test_chromium_renders_the_page_with_its_plots(two_run_lake, whole_lake_report, tmp_path):
    browser = chromium()
    lake, (_, _, out) = two_run_lake[0], whole_lake_report
    dom = headless(browser, "--dump-dom", out.as_uri()).stdout
    assert f"<title>corpus-nlp report: {lake}</title>" in dom and "<h2>Throughput over time</h2>" in dom

    shot = tmp_path / "report.png"
    headless(browser, f"--screenshot={shot}", "--window-size=1280,3000", out.as_uri())
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 3000)
    # the plots were drawn: the browser decoded the SVGs (the page's own styles have no such blue)
    blue = sum(count for count, colour in image.getcolors(1280 * 3000) if colour == MATPLOTLIB_BLUE)
    assert blue > 10_000


def test_run_ids_stay_on_one_line_in_a_narrow_window(two_run_lake, whole_lake_report, tmp_path):
    """Chromium lays the page out 480 px wide (the runs table much wider than that) and counts the lines of
    each run id cell: a copy of the page with a measuring script, the page itself has none."""
    browser = chromium()
    _, first, second = two_run_lake
    measure = (f"<script>const ids = new Set({json.dumps([first, second])}); document.title = JSON.stringify("
               "[...document.querySelectorAll('td')].filter(td => ids.has(td.textContent)).map(td => { "
               "const r = document.createRange(); r.selectNodeContents(td); "
               "return [td.textContent, r.getClientRects().length]; }));</script>")
    measured = tmp_path / "measured.html"
    measured.write_text(whole_lake_report[2].read_text(encoding="utf-8").replace("</body>", measure + "</body>"),
                        encoding="utf-8")
    dom = headless(browser, "--window-size=480,2000", "--dump-dom", measured.as_uri()).stdout
    lines = json.loads(re.search(r"<title>(.*?)</title>", dom).group(1))
    assert {run_id for run_id, _ in lines} == {first, second}
    assert {n for _, n in lines} == {1}, lines


HOSTILE_LANGS = ["$x^{$", "a$b$c", "<script>", "mixed"]  # all legal in a directory name


@pytest.fixture(scope="module")
def hostile_lake(spark, tmp_path_factory, demo_bundle):
    """A real lake of partitions named like mathtext and markup, then a failed run whose reason holds both
    (its model bundle path: a run fails on it after its manifest says "running")."""
    root = tmp_path_factory.mktemp("hostile")
    corpus = write_corpus(root / "corpus", {lang: [(f"{lang}-1", "Der Hund schläft.")] for lang in HOSTILE_LANGS})
    lake = root / "lake"
    committed = run_annotate(job_config(lake, corpus, demo_bundle.path), spark=spark)
    missing_bundle = root / "$x^{$" / "<b>model</b>"
    with pytest.raises(JobError, match="not found"):
        run_annotate(job_config(lake, corpus, missing_bundle), spark=spark)
    return lake, committed.run_id, str(missing_bundle)


def test_the_report_draws_and_writes_hostile_partition_values_as_they_are(spark, hostile_lake, tmp_path):
    lake, committed, missing_bundle = hostile_lake
    out = tmp_path / "hostile.html"
    # usetex as a matplotlibrc may set it (there is no TeX here: the report must not ask it), and text in
    # the SVGs as text, not glyph paths, to read it back
    with matplotlib.rc_context({"text.usetex": True, "svg.fonttype": "none"}):
        output, page = report(spark, lake, out)
    assert "Traceback" not in output and page.scripts == 0

    partitions = {f"lang={lang}" for lang in HOSTILE_LANGS}
    assert partitions <= {row[0] for row in page.rows}
    drawn = set()
    for uri in page.images:
        svg = ElementTree.fromstring(base64.b64decode(uri.split(",", 1)[1]))
        drawn |= {"".join(t.itertext()) for t in svg.iter("{http://www.w3.org/2000/svg}text")}
    assert partitions <= drawn

    runs = {row[0]: row for row in page.rows if row[1:2] in (("committed",), ("failed",))}  # the runs table's
    failed, = (row for run_id, row in runs.items() if run_id != committed)
    assert missing_bundle in failed[-1] and runs[committed][-1] == ""
