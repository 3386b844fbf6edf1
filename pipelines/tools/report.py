"""``corpus-nlp report LAKE``: one self-contained HTML page about what a lake holds and how its runs went.

The numbers are aggregated by Spark over the lake's tables (only the small results reach the driver)
and read from the run manifests in ``_runs/``; the plots are drawn by matplotlib as SVG and embedded in
the page as data URIs, so the page needs no network and no JavaScript to be viewed.

``--run ID`` keeps that run's rows (the ``run_id`` column) and its manifest only. A lake keeps the
latest rows of each partition: rows of a run whose partitions were annotated again since are gone,
and the page says so when a run left no rows.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pipelines.errors import CorpusNlpError
from pipelines.run.reuse import SENTENCE_CACHE
from pipelines.store.lake import (ANNOTATIONS_TABLE, CLASSIFICATIONS_TABLE, ENTITIES_TABLE, QUARANTINE_TABLE,
                                  TOKEN_TABLE, Lake, exists, read_manifests, write_text)

TABLES = (TOKEN_TABLE, QUARANTINE_TABLE, ENTITIES_TABLE, CLASSIFICATIONS_TABLE, ANNOTATIONS_TABLE)
HISTOGRAM_BINS = 30


class ReportError(CorpusNlpError):
    pass


# --- what the page shows ---------------------------------------------------------------------------
@dataclass
class Histogram:
    edges: list[float]  # len(counts) + 1
    counts: list[int]


@dataclass
class FileLayout:
    """One table's data files: per partition, how many and how many bytes."""

    table: str
    partitions: list[tuple[str, int, int]]  # (partition spec, files, bytes)

    @property
    def files(self) -> int:
        return sum(f for _, f, _ in self.partitions)

    @property
    def bytes(self) -> int:
        return sum(b for _, _, b in self.partitions)

    def summary(self) -> str:
        if not self.files:
            return f"{self.table}: no data files"
        n = len(self.partitions)
        most = max((f for _, f, _ in self.partitions), default=0)
        average = self.bytes / self.files / 1024 if self.files else 0.0
        return (f"{self.table}: {n} partitions, {self.files} files (at most {most} in a partition), "
                f"average file {average:,.1f} KiB, {self.bytes / 1024 / 1024:,.2f} MiB in all")


@dataclass
class ReportData:
    lake: str
    run_id: str | None
    manifests: list[dict]
    partition_cols: list[str]
    per_partition: list[tuple[str, int, int]] = field(default_factory=list)  # (partition, documents, tokens)
    quarantine: list[tuple[str, int]] = field(default_factory=list)
    sentence_lengths: Histogram | None = None
    document_lengths: Histogram | None = None
    entities: list[tuple[str, int]] | None = None
    classifications: list[tuple[str, int]] | None = None
    files: list[FileLayout] = field(default_factory=list)
    sentence_cache: tuple[int, FileLayout] | None = None  # (entries, files) of the lake's sentence cache


# --- reading the lake ----------------------------------------------------------------------------
def collect(spark, root: str, run_id: str | None = None) -> ReportData:
    """Everything the page shows, aggregated in Spark; raises ReportError when ``root`` holds no lake."""
    root = root.rstrip("/")
    manifests = sorted(read_manifests(spark, root), key=lambda m: m.get("started_at") or "")
    if run_id is not None:
        manifests = [m for m in manifests if m.get("run_id") == run_id]
        if not manifests:
            raise ReportError(f"no run {run_id} in {root}/_runs: `corpus-nlp report {root}` lists the lake's runs")
    lake = Lake(spark, root, _format(spark, root))
    if not manifests and not lake.has(TOKEN_TABLE):
        raise ReportError(f"{root} holds no lake: no run manifests in {root}/_runs and no {TOKEN_TABLE} table")
    cols = _partition_columns(manifests)
    data = ReportData(root, run_id, manifests, cols)
    id_col = _id_column(manifests)
    tokens = _table(lake, TOKEN_TABLE, run_id)
    if tokens is not None:
        _token_figures(data, tokens, cols, id_col)
    quarantine = _table(lake, QUARANTINE_TABLE, run_id)
    if quarantine is not None:
        data.quarantine = _counts_by(quarantine, "reason")
    entities = _table(lake, ENTITIES_TABLE, run_id)
    data.entities = _counts_by(entities, "entity") if entities is not None else None
    classifications = _table(lake, CLASSIFICATIONS_TABLE, run_id)
    data.classifications = _counts_by(classifications, "label") if classifications is not None else None
    data.files = [file_layout(lake, t, cols, run_id) for t in TABLES if lake.has(t)]
    if lake.format == "delta" and lake.has(SENTENCE_CACHE):
        entries = lake.read(SENTENCE_CACHE).where("pieces IS NOT NULL").count()  # not the runs' use rows
        data.sentence_cache = (entries, file_layout(lake, SENTENCE_CACHE, ["fingerprint"]))
    return data


def _format(spark, root: str) -> str:
    return "delta" if exists(spark, f"{root}/{TOKEN_TABLE}/_delta_log") else "parquet"


def _partition_columns(manifests: list[dict]) -> list[str]:
    for m in reversed(manifests):  # the latest run that got as far as reading its input
        cols = (m.get("input") or {}).get("partition_columns")
        if cols is not None:
            return list(cols)
    return []


def _id_column(manifests: list[dict]) -> str:
    for m in reversed(manifests):
        id_col = ((m.get("config") or {}).get("input") or {}).get("id_col")
        if id_col:
            return id_col
    return "doc_id"


def _table(lake: Lake, name: str, run_id: str | None):
    from pyspark.sql import functions as F

    df = lake.read(name)
    if df is None:
        return None
    if run_id is not None:
        df = df.where(F.col("run_id") == run_id) if "run_id" in df.columns else df.limit(0)
    return df


def _partition_spec(row, cols: list[str]) -> str:
    return "/".join(f"{c}={row[c]}" for c in cols) if cols else "(all)"


def _token_figures(data: ReportData, tokens, cols: list[str], id_col: str) -> None:
    from pyspark.sql import functions as F

    document = [id_col, *cols]
    rows = tokens.groupBy(*cols).agg(F.countDistinct(F.struct(*document)).alias("documents"),
                                     F.count(F.lit(1)).alias("tokens")).collect()
    data.per_partition = sorted((_partition_spec(r, cols), r["documents"], r["tokens"]) for r in rows)
    sentences = tokens.groupBy(*document, "sentence").agg(F.count(F.lit(1)).alias("length"))
    data.sentence_lengths = histogram(sentences, "length")
    documents = tokens.groupBy(*document).agg(F.count(F.lit(1)).alias("length"))
    data.document_lengths = histogram(documents, "length")


def histogram(df, column: str, bins: int = HISTOGRAM_BINS) -> Histogram | None:
    """Equal-width bins of an integer column, counted in Spark (two small aggregations)."""
    from pyspark.sql import functions as F

    low, high = df.agg(F.min(column), F.max(column)).first()
    if low is None:
        return None
    width = max(1, math.ceil((high - low + 1) / bins))
    counted = dict(df.groupBy(F.floor((F.col(column) - low) / width).alias("bin")).count().collect())
    n = int(max(counted)) + 1
    return Histogram([low + i * width for i in range(n + 1)], [counted.get(i, 0) for i in range(n)])


def _counts_by(df, column: str) -> list[tuple[str, int]]:
    if column not in df.columns:
        return []
    rows = df.groupBy(column).count().collect()
    return sorted(((str(r[column]), r["count"]) for r in rows), key=lambda kv: (-kv[1], kv[0]))


def file_layout(lake: Lake, table: str, cols: list[str], run_id: str | None = None) -> FileLayout:
    """The data files of ``table`` per partition (those holding ``run_id``'s rows, when given): counted
    in Spark from the files' own metadata column, without reading their data."""
    from pyspark.sql import functions as F

    df = _table(lake, table, run_id)
    if df is None:
        return FileLayout(table, [])
    present = [c for c in cols if c in df.columns]
    files = df.select(*present, F.col("_metadata.file_path").alias("file"),
                      F.col("_metadata.file_size").alias("size")).distinct()
    rows = files.groupBy(*present).agg(F.count(F.lit(1)).alias("files"), F.sum("size").alias("bytes")).collect()
    return FileLayout(table, sorted((_partition_spec(r, present), r["files"], int(r["bytes"])) for r in rows))


# --- drawing -------------------------------------------------------------------------------------
# Text from the lake (partition values, labels, run ids) is drawn as written: `a$b$c` is no mathtext and
# `$x^{$` no mathtext error, whatever the machine's matplotlibrc says (usetex too would read `$` as math).
LITERAL_TEXT = {"text.parse_math": False, "text.usetex": False}
PLOT_LABEL_CHARS = 40  # longer labels are cut in the plots (the tables under them show them whole)
START_UP_LABEL = "Spark and model start-up"


def _drawn_literally(draw):
    """Run ``draw`` with :data:`LITERAL_TEXT`: a text takes these settings when it is created, and tick
    labels are created as late as the figure is drawn, so the whole drawing (saving included) runs inside."""

    @functools.wraps(draw)
    def drawing(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(LITERAL_TEXT):
            return draw(*args, **kwargs)

    return drawing


def _figure(width: float = 7.5, height: float = 3.2, columns: int = 1):
    import matplotlib

    matplotlib.use("Agg")  # no display, whatever the session has
    import matplotlib.pyplot as plt

    return plt.subplots(1, columns, figsize=(width, height), layout="constrained")


@_drawn_literally
def _svg_data_uri(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})  # no timestamp: the same lake, the same page
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _plot_label(text: str) -> str:
    return text if len(text) <= PLOT_LABEL_CHARS else text[:PLOT_LABEL_CHARS - 1] + "…"


def _whole_numbers(axis) -> None:
    """Ticks at whole numbers only: an axis of 1 quarantined row reads 0, 1, not 0.0, 0.2, ... 1.0."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _overlap(texts) -> bool:
    """Whether any two of ``texts`` overlap on the figure as last drawn (their boxes on the canvas)."""
    renderer = texts[0].get_figure(root=True).canvas.get_renderer() if texts else None
    boxes = [t.get_window_extent(renderer) for t in texts if t.get_visible() and t.get_text()]
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def _fit_tick_labels(fig, ax, axis: str) -> None:
    """Tick labels (``axis`` "x" or "y") that never overlap, measured on the drawn figure: x labels that do
    not fit side by side stand upright; labels still too many for the figure grow it along that axis until
    each has its own room."""
    labels = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
    fig.draw_without_rendering()  # lays the figure out: the labels' boxes are where the saved figure has them
    if axis == "x" and _overlap(labels):
        for label in labels:
            label.set(rotation=90, horizontalalignment="center")
        fig.draw_without_rendering()
    def extent(box):  # along the axis
        return box.width if axis == "x" else box.height

    for _ in range(8):  # each round grows the figure by the room measured missing: one round, as a rule
        if not _overlap(labels):
            return
        renderer = fig.canvas.get_renderer()
        needed = 1.25 * len(labels) * max(extent(t.get_window_extent(renderer)) for t in labels)
        missing = max(needed - extent(ax.get_window_extent(renderer)), 0.1 * fig.dpi) / fig.dpi
        if axis == "x":
            fig.set_figwidth(fig.get_figwidth() + missing)
        else:
            fig.set_figheight(fig.get_figheight() + missing)
        fig.draw_without_rendering()


@_drawn_literally
def bar_figure(labels: list[str], counts: dict[str, list[int]], value_label: str, horizontal: bool = False):
    """Bars of whole counts, one group per label and one bar per series of ``counts``."""
    fig, ax = _figure(height=max(3.2, 0.28 * len(labels)) if horizontal else 3.2)
    n = len(counts)
    width = 0.8 / n
    for i, (name, values) in enumerate(counts.items()):
        positions = [x + (i - (n - 1) / 2) * width for x in range(len(labels))]
        if horizontal:
            ax.barh(positions, values, height=width, label=name)
        else:
            ax.bar(positions, values, width=width, label=name)
    shown = [_plot_label(label) for label in labels]
    if horizontal:
        ax.set_yticks(range(len(labels)), shown)
        ax.invert_yaxis()
        ax.set_xlabel(value_label)
        _whole_numbers(ax.xaxis)
    else:
        ax.set_xticks(range(len(labels)), shown)
        ax.set_ylabel(value_label)
        _whole_numbers(ax.yaxis)
    if n > 1:
        fig.legend(loc="outside right upper")  # beside the plot: a legend inside may cover a bar
    _fit_tick_labels(fig, ax, "y" if horizontal else "x")
    return fig


def bar_chart(labels: list[str], counts: dict[str, list[int]], value_label: str, horizontal: bool = False) -> str:
    return _svg_data_uri(bar_figure(labels, counts, value_label, horizontal))


@_drawn_literally
def histogram_figure(h: Histogram, xlabel: str):
    fig, ax = _figure()
    ax.stairs(h.counts, h.edges, fill=True)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    _whole_numbers(ax.xaxis)  # lengths in tokens
    _whole_numbers(ax.yaxis)
    fig.draw_without_rendering()
    return fig


def histogram_chart(h: Histogram, xlabel: str) -> str:
    return _svg_data_uri(histogram_figure(h, xlabel))


def start_up_seconds(progress: list[dict]) -> float | None:
    """How long a run counted no tokens at its start (Spark starting the tasks, each worker loading the
    model): the last progress sample before the first with tokens; None when the first already had some."""
    before = []
    for sample in progress:
        if sample.get("tokens"):
            break
        before.append(sample)
    return before[-1]["elapsed_s"] if before else None


@_drawn_literally
def throughput_figure(runs: list[dict]):
    """Tokens/s of each run, in the order they started; a run's own progress when its manifest has it,
    the seconds before its first tokens shaded."""
    fig, (per_run, during) = _figure(width=9, height=3.4, columns=2)
    per_run.bar(range(len(runs)), [r["tokens_per_s"] for r in runs])
    per_run.set_xticks(range(len(runs)), [_plot_label(r["run_id"]) for r in runs], fontsize=7)
    per_run.set_ylabel("tokens/s (annotating)")
    per_run.set_title("per run", fontsize=9)
    # the legend's entries are passed in: matplotlib leaves out labels that start with "_", a run id may
    handles, labels, start_up = [], [], None
    for r in runs:
        samples = r.get("progress") or []
        if not samples:
            continue
        line, = during.plot([s["elapsed_s"] for s in samples], [s["tokens"] for s in samples], marker=".")
        handles.append(line)
        labels.append(_plot_label(r["run_id"]))
        seconds = start_up_seconds(samples)
        if seconds:
            start_up = during.axvspan(0, seconds, color="0.5", alpha=0.2, linewidth=0)  # grey: one legend entry
    if start_up is not None:
        handles.append(start_up)
        labels.append(START_UP_LABEL)
    during.set_xlabel("seconds into annotating")
    during.set_ylabel("tokens done")
    during.set_ylim(bottom=0)  # from none: a run of one sample is not a band of ±0.2 tokens
    during.set_title("during each run", fontsize=9)
    _whole_numbers(during.yaxis)
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize=7)  # beside the plots, over no curve
    _fit_tick_labels(fig, per_run, "x")
    return fig


def throughput_chart(runs: list[dict]) -> str:
    return _svg_data_uri(throughput_figure(runs))


@_drawn_literally
def embedder_figure(runs: list[dict]):
    real = [r["embedder"].get("pieces", 0) for r in runs]
    padding = [r["embedder"].get("padded_pieces", 0) for r in runs]
    fig, ax = _figure()
    positions = range(len(runs))  # not the run ids as categories: ids cut to the same label stay two bars
    ax.bar(positions, real, label="WordPieces")
    ax.bar(positions, padding, bottom=real, label="padding")
    for x, r in enumerate(runs):
        ax.annotate(f"{r['embedder'].get('padding_ratio', 0):.1%} padding", (x, real[x] + padding[x]),
                    ha="center", va="bottom", fontsize=8)
    ax.margins(y=0.12)  # room above the tallest bar for its padding ratio
    ax.set_xticks(positions, [_plot_label(r["run_id"]) for r in runs])
    ax.set_ylabel("pieces fed to the model")
    _whole_numbers(ax.yaxis)
    fig.legend(loc="outside right upper")  # beside the plot: inside, it covered a bar
    _fit_tick_labels(fig, ax, "x")
    return fig


def embedder_chart(runs: list[dict]) -> str:
    return _svg_data_uri(embedder_figure(runs))


# --- the page ------------------------------------------------------------------------------------
def run_rows(manifests: list[dict]) -> list[dict]:
    """One flat record per run manifest: when, how long, what it counted."""
    rows = []
    for m in manifests:
        counts, timings = m.get("counts") or {}, m.get("timings") or {}
        annotate_s = timings.get("annotate_s", m.get("duration_s") or 0)
        tokens = counts.get("tokens", 0)
        rows.append({
            "run_id": str(m.get("run_id") or "?"), "status": str(m.get("status") or "?"),
            "started_at": str(m.get("started_at") or ""), "reason": m.get("reason"),
            "duration_s": m.get("duration_s") or 0, "partitions": len((m.get("input") or {}).get(
                "annotated_partitions", [])), "input_rows": counts.get("input_rows", 0),
            "annotated_rows": counts.get("annotated_rows", 0), "quarantined_rows": counts.get("quarantined_rows", 0),
            "tokens": tokens, "entities": counts.get("entities"), "annotate_s": annotate_s,
            "tokens_per_s": round(tokens / annotate_s, 1) if annotate_s else 0.0,
            "embedder": counts.get("embedder") or m.get("embedder"), "progress": m.get("progress"),
            "reuse": m.get("reuse"),
        })
    return rows


def _table_html(header: list[str], rows: list[list], classes: dict[int, str] | None = None) -> str:
    """A table of ``rows``, every cell's text escaped (a partition value ``<script>`` is text, not markup);
    ``classes``: the CSS class of a column's cells, by column index."""
    classes = classes or {}
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_td(v, classes.get(i)) for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _td(value, css_class: str | None) -> str:
    opening = f"<td class='{css_class}'>" if css_class else "<td>"
    return f"{opening}{html.escape(_cell(value))}</td>"


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def _section(title: str, *parts: str, note: str | None = None) -> str:
    text = f"<p class='note'>{html.escape(note)}</p>" if note else ""
    return f"<section><h2>{html.escape(title)}</h2>{text}{''.join(parts)}</section>"


def _img(uri: str, alt: str) -> str:
    return f"<img src='{uri}' alt='{html.escape(alt)}'>"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.note { color: #666; font-size: 0.9em; } img { max-width: 100%; }
td.id { white-space: nowrap; font-family: ui-monospace, monospace; }
td.reason { text-align: left; white-space: pre-wrap; min-width: 20em; }
"""
# td.id: a run id is one word to copy, not text to break at its hyphen; td.reason: a failure reason
# keeps its own line breaks


def render(data: ReportData) -> str:
    runs = run_rows(data.manifests)
    scope = f"run {data.run_id}" if data.run_id else f"{len(runs)} runs"
    sections = [_runs_section(runs), _partitions_section(data), _quarantine_section(data),
                _lengths_section(data), _embedder_section(runs), _reuse_section(runs, data), _throughput_section(runs),
                _labels_section("Entities per label", data.entities, "entities", "no entities table: the runs had no NER"),
                _labels_section("Classifications per label", data.classifications, "classifications", None),
                _files_section(data)]
    title = f"corpus-nlp report: {data.lake}"
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p class='note'>{html.escape(scope)}; generated {generated}</p>{''.join(s for s in sections if s)}"
            "</body></html>")


def _runs_section(runs: list[dict]) -> str:
    """One row per run; a column of reasons when a run failed or was abandoned (its manifest says why)."""
    header = ["run", "status", "started", "seconds", "partitions", "input rows", "annotated", "quarantined",
              "tokens", "tokens/s", "entities"]
    rows = [[r["run_id"], r["status"], r["started_at"][:19], r["duration_s"], r["partitions"], r["input_rows"],
             r["annotated_rows"], r["quarantined_rows"], r["tokens"], r["tokens_per_s"], r["entities"]] for r in runs]
    classes = {0: "id"}
    if any(r["reason"] for r in runs):
        header.append("reason")
        for row, r in zip(rows, runs):
            row.append(r["reason"])
        classes[len(header) - 1] = "reason"
    return _section("Runs", _table_html(header, rows, classes))


def _partitions_section(data: ReportData) -> str:
    if not data.per_partition:
        return _section("Documents and tokens per partition", note="no token rows" + (
            f" of run {data.run_id}: its partitions were annotated again since" if data.run_id else ""))
    labels = [p for p, _, _ in data.per_partition]
    return _section("Documents and tokens per partition",
                    _img(bar_chart(labels, {"documents": [d for _, d, _ in data.per_partition]}, "documents"),
                         "documents per partition"),
                    _img(bar_chart(labels, {"tokens": [t for _, _, t in data.per_partition]}, "tokens"),
                         "tokens per partition"),
                    _table_html(["partition", "documents with tokens", "tokens"],
                                [list(p) for p in data.per_partition]))


def _quarantine_section(data: ReportData) -> str:
    if not data.quarantine:
        return _section("Quarantine reasons", note="no quarantined rows")
    labels = [r for r, _ in data.quarantine]
    return _section("Quarantine reasons", _img(bar_chart(labels, {"rows": [n for _, n in data.quarantine]},
                                                         "rows", horizontal=True), "quarantine reasons"),
                    _table_html(["reason", "rows"], [list(q) for q in data.quarantine]))


def _lengths_section(data: ReportData) -> str:
    parts = []
    if data.sentence_lengths:
        parts.append(_img(histogram_chart(data.sentence_lengths, "tokens per sentence"), "sentence lengths"))
    if data.document_lengths:
        parts.append(_img(histogram_chart(data.document_lengths, "tokens per document"), "document lengths"))
    return _section("Sentence and document lengths", *parts) if parts else ""


def _embedder_section(runs: list[dict]) -> str:
    with_counts = [r for r in runs if r["embedder"]]
    if not with_counts:
        return _section("Windows and padding", note="no embedder counters in the manifests (no embeddings computed)")
    header = ["run", "windows", "model calls", "WordPieces", "padding", "padding ratio", "model seconds"]
    rows = [[r["run_id"], r["embedder"].get("windows"), r["embedder"].get("model_calls"), r["embedder"].get("pieces"),
             r["embedder"].get("padded_pieces"), f"{r['embedder'].get('padding_ratio', 0):.2%}",
             float(r["embedder"].get("model_seconds", 0.0))] for r in with_counts]
    return _section("Windows and padding", _img(embedder_chart(with_counts), "pieces and padding per run"),
                    _table_html(header, rows, {0: "id"}))


def _reuse_section(runs: list[dict], data: ReportData) -> str:
    """Per run: the sentences served from earlier occurrences (this run's shared set, the lake's sentence
    cache, a worker's memory) instead of the model; and the cache's size."""
    with_reuse = [r for r in runs if r["reuse"]]
    if not with_reuse and data.sentence_cache is None:
        return ""
    rows = [[r["run_id"], u["mode"], u["sentences_seen"], _share(u.get("repeated_char_share")),
             u["served_from_run"], u["served_from_lake"], u["served_from_worker"], u["computed_in_pass"],
             _share(u["reuse_share"]), _share(u["served_from_lake"] / u["sentences_seen"] if u["sentences_seen"] else 0)]
            for r in with_reuse for u in [r["reuse"]]]
    table = _table_html(["run", "reuse", "sentences", "repeated text", "from the run's set", "from the lake's cache",
                         "from a worker", "computed", "served", "cache hit rate"], rows, {0: "id"})
    return _section("Sentence reuse", table, note=sentence_cache_summary(data))


def _share(value) -> str:
    return "" if value is None else f"{float(value):.1%}"


def sentence_cache_summary(data: ReportData) -> str | None:
    if data.sentence_cache is None:
        return None
    entries, layout = data.sentence_cache
    return (f"{SENTENCE_CACHE}: {entries:,} sentences, {layout.bytes / 1024 / 1024:,.2f} MiB in {layout.files} files, "
            f"{len(layout.partitions)} pipeline fingerprint(s)")


def _throughput_section(runs: list[dict]) -> str:
    done = [r for r in runs if r["tokens"]]
    if not done:
        return _section("Throughput over time", note="no run annotated tokens")
    return _section("Throughput over time", _img(throughput_chart(done), "throughput"),
                    note="tokens/s over the run's annotating time (model build and NER training apart); shaded: "
                         f"the seconds before a run's first tokens ({START_UP_LABEL})")


def _labels_section(title: str, counts: list[tuple[str, int]] | None, what: str, absent: str | None) -> str:
    if counts is None:
        return _section(title, note=absent) if absent else ""
    if not counts:
        return _section(title, note=f"no {what}")
    labels = [label for label, _ in counts]
    return _section(title, _img(bar_chart(labels, {what: [n for _, n in counts]}, what, horizontal=True), title),
                    _table_html(["label", what], [list(c) for c in counts]))


def _files_section(data: ReportData) -> str:
    rows = [[f.table, len(f.partitions), f.files, max((n for _, n, _ in f.partitions), default=0),
             round(f.bytes / f.files / 1024, 1) if f.files else 0.0] for f in data.files]
    return _section("Data files", _table_html(["table", "partitions", "files", "most files in a partition",
                                               "average file KiB"], rows))


# --- the command ---------------------------------------------------------------------------------
def write_report(spark, lake: str, out: str | None = None, run_id: str | None = None) -> tuple[str, ReportData]:
    """Write the page for ``lake`` to ``out`` (default: LAKE/_reports/report[-RUN].html); returns its path."""
    data = collect(spark, lake, run_id)
    page = render(data)
    target = out or f"{lake.rstrip('/')}/_reports/report{'-' + run_id if run_id else ''}.html"
    write_text(spark, target, page)
    return target, data


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ReportError("the report needs matplotlib, which is not installed: pip install 'corpus-nlp[report]' "
                          "(in a checkout: pip install -e '.[report]')") from None


def summary_lines(path: str, data: ReportData) -> list[str]:
    cache = sentence_cache_summary(data)
    return [f"wrote {path}", *(f"  {f.summary()}" for f in data.files), *([f"  {cache}"] if cache else [])]
