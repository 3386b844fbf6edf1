"""``corpus-nlp annotate --dry-run``: the partitions a run would annotate, and why, without running it.

Reads what a run reads to decide (the input's files, the lake's run ids, the run manifests, the model's
manifest) and writes nothing: no manifest, no lease, no table, no model build, not even the output folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.store import state
from pipelines.config import JobConfig
from pipelines.errors import JobError
from pipelines.run.assemble import build_stages, model_summaries, uses_bundle
from pipelines.run.inputs import precheck_input
from pipelines.run.job import check_lake_schema, select_input, session_for, state_tables
from pipelines.spark.session import restores_session_conf
from pipelines.store.lake import Lake, read_manifests
from pipelines.store.remote_files import is_inside, is_local, local_path


DELETED = "deleted from the input"


@dataclass
class DryRun:
    input_path: str
    output_path: str
    incremental: bool
    fingerprint: str | None
    # (spec, action, why); action: annotate | skip, or remove | keep for a partition deleted from the input
    partitions: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # how much of the text to annotate repeats (pipelines.run.reuse.repetition); None when not measured
    repetition: dict | None = None

    @property
    def to_do(self) -> int:
        return sum(action == "annotate" for _, action, _ in self.partitions)

    @property
    def done(self) -> int:
        return sum(action == "skip" for _, action, _ in self.partitions)

    @property
    def deleted(self) -> list[tuple[str, str]]:
        """(spec, remove | keep) of the partitions the lake holds and the input no longer has."""
        return [(spec, action) for spec, action, why in self.partitions if why == DELETED]

    def as_dict(self) -> dict:
        return {"input": self.input_path, "output": self.output_path, "incremental": self.incremental,
                "fingerprint": self.fingerprint, "to_do": self.to_do, "already_done": self.done,
                "deleted_from_input": len(self.deleted),
                "partitions": [{"partition": p, "action": a, "reason": r} for p, a, r in self.partitions],
                "repetition": self.repetition, "notes": self.notes}


@restores_session_conf
def dry_run(config: JobConfig, spark=None) -> DryRun:
    """What a run would do; a session passed in (a notebook's) keeps its settings. Writes nothing: not even
    the output directory a run's check of the output path would create."""
    if not config.input.table and is_inside(config.output.path, config.input.path):
        raise JobError(f"output path {config.output.path} lies inside the input path {config.input.path}")
    precheck_input(config)
    spark, config = session_for(config, spark)
    check_lake_schema(config, spark)  # the run would be refused before any model work: say so now
    out = config.output.path.rstrip("/")
    lake = Lake(spark, out, config.output.format)
    has_lake = not is_local(out) or local_path(out).exists()  # reading a missing local lake would be all "new"
    chosen = select_input(spark, config, lake, has_lake)
    selected, deleted, partition_cols = chosen.selected, chosen.deleted, chosen.partition_cols
    report = DryRun(config.input.source, out, config.incremental and not config.full_refresh, None)
    stages = _stages(config, chosen.raw.columns, report.notes)
    report.fingerprint = _fingerprint(config, stages)
    action = "remove" if config.removes_deleted_partitions else "keep"
    gone = [(p.spec, action, DELETED) for p in deleted]
    if not report.incremental:
        why = "full refresh" if config.full_refresh else "not incremental"
        report.partitions = [(p.spec, "annotate", why) for p in selected] + gone
    else:
        held = state.holders(lake, state_tables(config), partition_cols, selected) if has_lake else {}
        manifests = read_manifests(spark, out) if has_lake else []
        report.partitions = [(p.spec, "skip" if why == state.DONE else "annotate", why)
                             for p, why in state.reasons(selected, held, manifests, report.fingerprint)] + gone
    todo = {spec for spec, what, why in report.partitions if what == "annotate"}
    if todo and stages:
        report.repetition = _repetition(config, chosen, [p for p in selected if p.spec in todo], stages)
    return report


def _repetition(config: JobConfig, chosen, todo: list, stages) -> dict:
    """The repeated share of the text the run would annotate (its key pass: the text stages alone)."""
    from pyspark.sql import functions as F

    from pipelines.run.reuse import repetition, sentence_counts
    from pipelines.store.lake import partition_predicate

    rows = chosen.raw.where(F.col(config.input.text_col).isNotNull())
    if chosen.partition_cols and len(todo) < len(chosen.selected):
        rows = rows.where(F.expr(partition_predicate(chosen.partition_cols, todo)))
    return repetition(sentence_counts(rows, stages))


def _stages(config: JobConfig, columns: list[str], notes: list[str]) -> list | None:
    """The native stages a run would build; None for the sparknlp engine, or (with a note) when a model they
    need is not there yet: a run would build the demo ones first."""
    if config.engine != "native":
        return None
    bundle = config.model.bundle if uses_bundle(config) else None
    ner_dir = config.ner.model or None
    wanted = (("model bundle", bundle, ("manifest.json",), "build"),
              ("NER model", ner_dir, ("ner.json", "manifest.json"), "train"))  # an NER directory, or a bundle
    missing = [(what, path, verb) for what, path, markers, verb in wanted
               if path and is_local(path) and not any((local_path(path) / m).exists() for m in markers)]
    for what, path, verb in missing:
        notes.append(f"{what} {path} is missing: a run would {verb} it first (where the config allows), so the "
                     "pipeline's fingerprint and the text's repeated share are not known yet")
    return None if missing else build_stages(config, bundle, columns, ner_dir)


def _fingerprint(config: JobConfig, stages: list | None) -> str | None:
    """The pipeline's fingerprint, as :func:`pipelines.run.job.plan_run` computes it."""
    from pipelines.annotate import sparknlp_engine

    if config.engine != "native":
        return state.fingerprint(config, sparknlp_engine.model_info(config))
    return None if stages is None else state.fingerprint(config, *model_summaries(stages))
