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
import html
import io
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pipelines.errors import CorpusNlpError
from pipelines.lake import (ANNOTATIONS_TABLE, CLASSIFICATIONS_TABLE, ENTITIES_TABLE, QUARANTINE_TABLE, TOKEN_TABLE,
                            Lake, exists, read_manifests, write_text)

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
def _figure(width: float = 7.5, height: float = 3.2, columns: int = 1):
    import matplotlib

    matplotlib.use("Agg")  # no display, whatever the session has
    import matplotlib.pyplot as plt

    return plt.subplots(1, columns, figsize=(width, height), layout="constrained")


def _svg_data_uri(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})  # no timestamp: the same lake, the same page
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def bar_chart(labels: list[str], series: dict[str, list[float]], ylabel: str, horizontal: bool = False) -> str:
    fig, ax = _figure(height=max(3.2, 0.28 * len(labels)) if horizontal else 3.2)
    n = len(series)
    width = 0.8 / n
    for i, (name, values) in enumerate(series.items()):
        positions = [x + (i - (n - 1) / 2) * width for x in range(len(labels))]
        if horizontal:
            ax.barh(positions, values, height=width, label=name)
        else:
            ax.bar(positions, values, width=width, label=name)
    if horizontal:
        ax.set_yticks(range(len(labels)), labels)
        ax.invert_yaxis()
        ax.set_xlabel(ylabel)
    else:
        ax.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 6 else 0, ha="right"
                      if len(labels) > 6 else "center")
        ax.set_ylabel(ylabel)
    if n > 1:
        ax.legend()
    return _svg_data_uri(fig)


def histogram_chart(h: Histogram, xlabel: str) -> str:
    fig, ax = _figure()
    ax.stairs(h.counts, h.edges, fill=True)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    return _svg_data_uri(fig)


def throughput_chart(runs: list[dict]) -> str:
    """Tokens/s of each run, in the order they started; a run's own progress when its manifest has it."""
    fig, (left, right) = _figure(width=9, height=3.4, columns=2)
    labels = [r["run_id"][:15] for r in runs]
    left.bar(range(len(runs)), [r["tokens_per_s"] for r in runs])
    left.set_xticks(range(len(runs)), labels, rotation=45 if len(runs) > 3 else 0, ha="right" if len(runs) > 3
                    else "center", fontsize=7)
    left.set_ylabel("tokens/s (annotating)")
    left.set_title("per run", fontsize=9)
    for r in runs:
        samples = r.get("progress") or []
        if samples:
            right.plot([s["elapsed_s"] for s in samples], [s["tokens"] for s in samples], marker=".",
                       label=r["run_id"][:15])
    right.set_xlabel("seconds into annotating")
    right.set_ylabel("tokens done")
    right.set_title("during each run", fontsize=9)
    if any(r.get("progress") for r in runs):
        right.legend(fontsize=7)
    return _svg_data_uri(fig)


def embedder_chart(runs: list[dict]) -> str:
    labels = [r["run_id"][:15] for r in runs]
    real = [r["embedder"].get("pieces", 0) for r in runs]
    padding = [r["embedder"].get("padded_pieces", 0) for r in runs]
    fig, ax = _figure()
    ax.bar(labels, real, label="WordPieces")
    ax.bar(labels, padding, bottom=real, label="padding")
    for x, r in enumerate(runs):
        ax.annotate(f"{r['embedder'].get('padding_ratio', 0):.1%} padding", (x, real[x] + padding[x]),
                    ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("pieces fed to the model")
    ax.legend()
    return _svg_data_uri(fig)


# --- the page ------------------------------------------------------------------------------------
def run_rows(manifests: list[dict]) -> list[dict]:
    """One flat record per run manifest: when, how long, what it counted."""
    rows = []
    for m in manifests:
        counts, timings = m.get("counts") or {}, m.get("timings") or {}
        annotate_s = timings.get("annotate_s", m.get("duration_s") or 0)
        tokens = counts.get("tokens", 0)
        rows.append({
            "run_id": m.get("run_id", "?"), "status": m.get("status", "?"), "started_at": m.get("started_at", ""),
            "duration_s": m.get("duration_s") or 0, "partitions": len((m.get("input") or {}).get(
                "annotated_partitions", [])), "input_rows": counts.get("input_rows", 0),
            "annotated_rows": counts.get("annotated_rows", 0), "quarantined_rows": counts.get("quarantined_rows", 0),
            "tokens": tokens, "entities": counts.get("entities"), "annotate_s": annotate_s,
            "tokens_per_s": round(tokens / annotate_s, 1) if annotate_s else 0.0,
            "embedder": counts.get("embedder") or m.get("embedder"), "progress": m.get("progress"),
        })
    return rows


def _table_html(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


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
"""


def render(data: ReportData) -> str:
    runs = run_rows(data.manifests)
    scope = f"run {data.run_id}" if data.run_id else f"{len(runs)} runs"
    sections = [_runs_section(runs), _partitions_section(data), _quarantine_section(data),
                _lengths_section(data), _embedder_section(runs), _throughput_section(runs),
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
    header = ["run", "status", "started", "seconds", "partitions", "input rows", "annotated", "quarantined",
              "tokens", "tokens/s", "entities"]
    rows = [[r["run_id"], r["status"], r["started_at"][:19], r["duration_s"], r["partitions"], r["input_rows"],
             r["annotated_rows"], r["quarantined_rows"], r["tokens"], r["tokens_per_s"], r["entities"]] for r in runs]
    return _section("Runs", _table_html(header, rows))


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
                    _table_html(header, rows))


def _throughput_section(runs: list[dict]) -> str:
    done = [r for r in runs if r["tokens"]]
    if not done:
        return _section("Throughput over time", note="no run annotated tokens")
    return _section("Throughput over time", _img(throughput_chart(done), "throughput"),
                    note="tokens/s over the run's annotating time (model build and NER training apart)")


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
    return [f"wrote {path}", *(f"  {f.summary()}" for f in data.files)]
