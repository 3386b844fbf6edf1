"""A run's counts, read back from what it wrote to the lake, and the checks that every input row (and
every classified document or sentence) is there exactly once. ``plan`` is the job's :class:`RunPlan`."""

from __future__ import annotations

from pipelines.errors import JobError
from pipelines.store.lake import CLASSIFICATIONS_TABLE, ENTITIES_TABLE, QUARANTINE_TABLE, TOKEN_TABLE


def zero_counts() -> dict:
    return {"input_rows": 0, "annotated_rows": 0, "rows_with_tokens": 0, "kept_empty_rows": 0,
            "quarantined_rows": 0, "quarantined_by_reason": {}, "tokens": 0}


def counts_read_back(plan, totals) -> dict:
    """Counts read back from what this run wrote, so a lost or doubled row shows up as a mismatch."""
    from pyspark.sql import functions as F

    id_col = plan.config.input.id_col
    tokens = plan.written(TOKEN_TABLE)
    document = F.struct(id_col, *plan.partition_cols)  # a struct, so that a null partition value still counts
    stats = tokens.agg(F.count(F.lit(1)).alias("n"), F.countDistinct(document).alias("docs")).first() \
        if tokens is not None else {"n": 0, "docs": 0}
    quarantine = plan.written(QUARANTINE_TABLE)
    by_reason = {r["reason"]: r["count"] for r in quarantine.groupBy("reason").count().collect()} \
        if quarantine is not None else {}
    kept_empty = sum(r["kept_empty"] for r in totals)
    entities = plan.written(ENTITIES_TABLE) if ENTITIES_TABLE in plan.tables else None
    classified = _classification_counts(plan, tokens, document) if CLASSIFICATIONS_TABLE in plan.tables else None
    return {
        "input_rows": sum(r["rows"] for r in totals),
        "annotated_rows": stats["docs"] + kept_empty,
        "rows_with_tokens": stats["docs"],
        "kept_empty_rows": kept_empty,
        "quarantined_rows": sum(by_reason.values()),
        "quarantined_by_reason": dict(sorted(by_reason.items())),
        "tokens": stats["n"],
        **({"entities": entities.count() if entities is not None else 0} if ENTITIES_TABLE in plan.tables else {}),
        **({"classifications": classified["classifications"], "classifications_expected": classified["expected"]}
           if classified else {}),
        **({"embedder": plan.manifest.body["embedder"]} if "embedder" in plan.manifest.body else {}),
    }


def _classification_counts(plan, tokens, document) -> dict:
    """This run's classifications, and how many there should be: one per document with tokens, or one
    per sentence with tokens (over: sentence, not coalesced)."""
    from pyspark.sql import functions as F

    written = plan.written(CLASSIFICATIONS_TABLE)
    n = written.count() if written is not None else 0
    if tokens is None:
        return {"classifications": n, "expected": 0}
    per_sentence = plan.config.classify.over == "sentence" and not plan.config.classify.coalesce_sentences
    unit = F.struct(document, "sentence") if per_sentence else document
    return {"classifications": n, "expected": tokens.select(F.countDistinct(unit)).first()[0]}


def check_accounted(plan, counts: dict) -> None:
    _check_classified(plan, counts)
    placed = counts["annotated_rows"] + counts["quarantined_rows"]
    if counts["input_rows"] == placed:
        return
    plan.manifest.body["counts"] = counts
    what = "rows lost" if placed < counts["input_rows"] else "rows doubled"
    raise JobError(f"{what}: {counts['input_rows']} input rows but {counts['annotated_rows']} annotated + "
                   f"{counts['quarantined_rows']} quarantined in the lake; see {plan.manifest.path}")


def _check_classified(plan, counts: dict) -> None:
    """One classification per document (or sentence) that has tokens, read back from the lake."""
    if "classifications" not in counts or counts["classifications"] == counts["classifications_expected"]:
        return
    plan.manifest.body["counts"] = counts
    over = "sentences" if plan.config.classify.over == "sentence" and not plan.config.classify.coalesce_sentences \
        else "documents"
    found, expected = counts["classifications"], counts["classifications_expected"]
    raise JobError(f"classifications {'lost' if found < expected else 'doubled'}: {expected} {over} with tokens "
                   f"but {found} classifications in the lake; see {plan.manifest.path}")

