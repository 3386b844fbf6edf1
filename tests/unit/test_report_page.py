"""The report page from its numbers (no Spark): which sections and plots a lake's contents give."""

from __future__ import annotations

import base64

import pytest

from pipelines.report import FileLayout, Histogram, ReportData, render, run_rows

pytest.importorskip("matplotlib")


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
