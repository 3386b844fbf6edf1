"""The report page from its numbers (no Spark): which sections and plots a lake's contents give."""

from __future__ import annotations

import base64
import itertools
import re
from html.parser import HTMLParser
from xml.etree import ElementTree

import pytest

from pipelines.tools.report import (START_UP_LABEL, FileLayout, Histogram, ReportData, bar_figure, embedder_figure,
                                    histogram_figure, render, run_rows, start_up_seconds, throughput_figure)

matplotlib = pytest.importorskip("matplotlib")


def manifest(run_id: str, tokens: int, annotate_s: float, **extra) -> dict:
    return {"run_id": run_id, "status": "committed", "started_at": "2026-11-29T02:00:00+00:00", "duration_s": 9.0,
            "input": {"annotated_partitions": [{}, {}]}, "timings": {"annotate_s": annotate_s},
            "counts": {"input_rows": 5, "annotated_rows": 4, "quarantined_rows": 1, "tokens": tokens}, **extra}


def test_tokens_per_second_is_over_the_annotating_time_not_the_whole_run():
    row, = run_rows([manifest("r1", 1200, 4.0)])
    assert row["tokens_per_s"] == 300.0 and row["duration_s"] == 9.0 and row["partitions"] == 2


def test_a_lake_without_ner_or_embeddings_says_so_instead_of_drawing_empty_plots():
    data = ReportData("lake", None, [manifest("r1", 0, 1.0)], ["lang"])
    page = render(data)
    assert "no token rows" in page and "no quarantined rows" in page and "the runs had no NER" in page
    assert "no embedder counters" in page and "<img" not in page


def test_every_plot_is_an_svg_inside_the_page():
    embedder = {"windows": 3, "pieces": 90, "padded_pieces": 10, "model_calls": 2, "model_seconds": 0.5,
                "padding_ratio": 0.1111}
    data = ReportData(
        "lake", "r2", [manifest("r2", 90, 3.0, progress=[{"elapsed_s": 2.0, "rows": 2, "tokens": 40},
                                                       {"elapsed_s": 4.0, "rows": 4, "tokens": 90}])], ["lang"],
        per_partition=[("lang=de", 2, 50), ("lang=en", 2, 40)], quarantine=[("null_text", 1)],
        sentence_lengths=Histogram([1, 5, 9], [3, 1]), document_lengths=Histogram([10, 30, 50], [2, 2]),
        entities=[("LOC", 3), ("PER", 1)], classifications=[],
        files=[FileLayout("token_embeddings", [("lang=de", 1, 2048), ("lang=en", 1, 1024)])])
    data.manifests[0]["counts"]["embedder"] = embedder
    page = render(data)
    images = [part.split("'", 1)[0] for part in page.split("<img src='")[1:]]
    assert len(images) == 8  # documents, tokens, quarantine, 2 histograms, padding, throughput, entities
    assert all(base64.b64decode(uri.removeprefix("data:image/svg+xml;base64,")).lstrip().startswith(b"<?xml")
               for uri in images)
    assert "11.11%" in page and "<td>1.5</td>" in page  # padding ratio; average KiB of the 2 files
    assert "no classifications" in page and "run r2" in page


# --- text from the lake, drawn and written as it is ------------------------------------------------
HOSTILE_PARTITIONS = ["lang=$x^{$", "lang=a$b$c", "lang=<script>", "lang=_hidden"]
HOSTILE_LABELS = ["$\\alpha$", "<b>PER</b>", "a$b$c", "_LOC"]
HOSTILE_REASON = "model bundle /m/$x^{$ not found & <b>bold</b>\nsecond line"
HOSTILE_RUN_IDS = ["run-$x^{$", "<img src=x onerror=alert(1)>", "_leading"]
EMBEDDER = {"windows": 3, "pieces": 90, "padded_pieces": 10, "model_calls": 2, "model_seconds": 0.5,
            "padding_ratio": 0.1111}
PROGRESS = [{"elapsed_s": 2.0, "rows": 0, "tokens": 0}, {"elapsed_s": 4.0, "rows": 4, "tokens": 90}]


class Html(HTMLParser):
    """The page as a browser reads it: its elements, and the text of the cells of each table's rows."""

    def __init__(self, text: str):
        super().__init__()
        self.tags, self.tables, self._row = [], [], None
        self.feed(text)

    @property
    def rows(self) -> list[tuple[str, ...]]:
        return [row for table in self.tables for row in table]

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._row.append("")

    def handle_endtag(self, tag):
        if tag == "tr":
            self.tables[-1].append(tuple(self._row))

    def handle_data(self, data):
        if self._row:
            self._row[-1] += data


def svg_texts(page: str) -> set[str]:
    """Every text of every plot on the page (the SVGs as written with svg.fonttype "none": text, not paths)."""
    texts = set()
    for uri in re.findall(r"src='data:image/svg\+xml;base64,([^']+)'", page):
        svg = ElementTree.fromstring(base64.b64decode(uri))
        texts |= {"".join(t.itertext()) for t in svg.iter("{http://www.w3.org/2000/svg}text")}
    return texts


def hostile_lake_data() -> ReportData:
    runs = [manifest(run_id, 90, 3.0, progress=PROGRESS) for run_id in HOSTILE_RUN_IDS]
    for m in runs:
        m["counts"]["embedder"] = EMBEDDER
    runs.append({**manifest("failed-$x^{$", 0, 0.0), "status": "failed", "reason": HOSTILE_REASON})
    return ReportData("lake/<b>", None, runs, ["lang"], per_partition=[(p, 1, 30) for p in HOSTILE_PARTITIONS],
                      quarantine=[("reason $x^{$", 1)], sentence_lengths=Histogram([1, 5], [2]),
                      entities=[(label, 1) for label in HOSTILE_LABELS], classifications=[("a$b$c", 2)])


def test_text_from_the_lake_is_drawn_as_written_not_as_mathtext_or_tex():
    # usetex as a matplotlibrc may set it: the report must not hand `$x^{$` to TeX (there is none here,
    # and where there is, `a$b$c` would come out as math); svg.fonttype "none" keeps the texts readable
    with matplotlib.rc_context({"svg.fonttype": "none", "text.usetex": True}):
        texts = svg_texts(render(hostile_lake_data()))
    assert set(HOSTILE_PARTITIONS) <= texts  # documents and tokens per partition
    assert set(HOSTILE_LABELS) <= texts and "reason $x^{$" in texts  # entities; quarantine reasons
    assert set(HOSTILE_RUN_IDS) <= texts  # throughput per run and its legend ("_leading" too), padding


def test_text_from_the_lake_is_text_in_the_page_not_markup():
    page = Html(render(hostile_lake_data()))
    assert [tag for tag, _ in page.tags if tag in ("script", "b")] == []
    assert [attrs.get("src", "")[:5] for tag, attrs in page.tags if tag == "img"] == ["data:"] * 8
    cells = {cell for row in page.rows for cell in row}
    assert set(HOSTILE_PARTITIONS) | set(HOSTILE_LABELS) | set(HOSTILE_RUN_IDS) <= cells


def test_a_failed_runs_row_shows_its_reason():
    header, *rows = Html(render(hostile_lake_data())).tables[0]  # the runs
    assert header[-1] == "reason"
    reasons = {row[0]: row[-1] for row in rows}
    assert reasons["failed-$x^{$"] == HOSTILE_REASON and reasons["run-$x^{$"] == ""
    # a lake whose runs all committed has no column of empty reasons
    assert "reason" not in Html(render(ReportData("lake", None, [manifest("r1", 5, 1.0)], []))).tables[0][0]


def test_run_ids_are_kept_on_one_line():
    page = Html(render(hostile_lake_data()))
    id_cells = [attrs.get("class") for tag, attrs in page.tags if tag == "td"]
    assert id_cells.count("id") == 2 * len(HOSTILE_RUN_IDS) + 1  # runs (the failed one too), windows and padding
    assert re.search(r"td\.id\s*\{[^}]*white-space:\s*nowrap", render(hostile_lake_data()))


# --- the plots' layout, measured on the drawn figures --------------------------------------------------
def overlapping(texts) -> list[tuple[str, str]]:
    boxes = [(t.get_text(), t.get_window_extent()) for t in texts if t.get_visible() and t.get_text()]
    return [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2) if box_a.overlaps(box_b)]


@pytest.mark.parametrize("labels", [
    ["lang=de", "lang=mixed", "lang=zh"],
    [f"lang={lang}/source=web" for lang in ("de", "en", "mixed", "zh", "fr")],  # overlapped level
    [f"lang={lang}" for lang in ("de", "en", "fr", "mixed", "zh", "ja", "ko", "it", "es", "pt", "ru", "ar")],  # at 45°
    [f"lang=mixed-{i}" for i in range(80)],  # more than fit upright in the page's width
    ["lang=" + "mixed" * 30, "lang=de"],  # longer than the plot: cut
], ids=["three", "two-columns", "twelve", "eighty", "very-long"])
def test_partition_labels_never_overlap(labels):
    fig = bar_figure(labels, {"documents": [1] * len(labels)}, "documents")
    ticks = fig.axes[0].get_xticklabels()
    fig.draw_without_rendering()
    assert len(ticks) == len(labels) and overlapping(ticks) == []
    assert fig.get_figwidth() < 9 or len(labels) > 40  # the figure grows only when upright labels do not fit


def test_many_label_rows_never_overlap():
    labels = [f"label-{i}" for i in range(120)]
    fig = bar_figure(labels, {"entities": list(range(120))}, "entities", horizontal=True)
    fig.draw_without_rendering()
    assert overlapping(fig.axes[0].get_yticklabels()) == []


def test_run_ids_under_the_throughput_bars_never_overlap():
    runs = run_rows([manifest(f"20261129T02{i:02}00Z-b0abe65{i}", 100, 2.0) for i in range(9)])
    fig = throughput_figure(runs)
    fig.draw_without_rendering()
    ticks = fig.axes[0].get_xticklabels()
    assert [t.get_text() for t in ticks] == [r["run_id"] for r in runs] and overlapping(ticks) == []


def test_count_axes_have_whole_numbers_only():
    one_row = bar_figure(["null_text"], {"rows": [1]}, "rows", horizontal=True).axes[0].xaxis
    lengths = histogram_figure(Histogram([1, 2, 3], [1, 2]), "tokens per sentence").axes[0]
    embedder = embedder_figure(run_rows([manifest("r1", 9, 1.0, embedder={**EMBEDDER, "pieces": 3,
                                                                          "padded_pieces": 1})])).axes[0].yaxis
    progress = throughput_figure(run_rows([manifest("r1", 3, 1.0, progress=[{"elapsed_s": 2.0, "tokens": 3}])]))
    for axis in (one_row, lengths.xaxis, lengths.yaxis, embedder, progress.axes[1].yaxis):
        ticks = axis.get_majorticklocs()
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks


def test_the_padding_legend_covers_no_bar_and_no_ratio():
    for n in (1, 3):
        fig = embedder_figure(run_rows([manifest(f"r{i}", 90, 3.0, embedder=EMBEDDER) for i in range(n)]))
        fig.draw_without_rendering()
        ax = fig.axes[0]
        legends = [*fig.legends, *(a.get_legend() for a in fig.axes if a.get_legend())]
        assert len(legends) == 1 and len(ax.patches) == 2 * n and len(ax.texts) == n
        legend = legends[0].get_window_extent()
        assert not [a for a in [*ax.patches, *ax.texts] if legend.overlaps(a.get_window_extent())]


def test_the_seconds_before_the_first_tokens_are_shaded_as_start_up():
    assert start_up_seconds([{"elapsed_s": 2.0, "tokens": 0}, {"elapsed_s": 4.0, "tokens": 0},
                             {"elapsed_s": 6.0, "tokens": 50}]) == 4.0
    assert start_up_seconds([{"elapsed_s": 2.0, "tokens": 50}]) is None
    slow = [{"elapsed_s": 2.0 * i, "rows": 0, "tokens": 0} for i in range(1, 16)] + [
        {"elapsed_s": 32.0, "rows": 3, "tokens": 120}, {"elapsed_s": 34.0, "rows": 5, "tokens": 300}]
    quick = [{"elapsed_s": 2.0, "rows": 5, "tokens": 300}]
    fig = throughput_figure(run_rows([manifest("slow", 300, 34.0, progress=slow),
                                      manifest("quick", 300, 2.0, progress=quick)]))
    during = fig.axes[1]
    span, = during.patches  # the quick run started at once: nothing of it to shade
    assert (span.get_x(), span.get_width()) == (0, 30.0)
    legend, = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["slow", "quick", START_UP_LABEL]
