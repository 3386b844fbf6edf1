"""``corpus-nlp``: the command line. Thin: every command calls the library and reports errors plainly."""

from __future__ import annotations

import os

import click

from pipelines.tools.cli_errors import friendly_errors, require_spark


@click.group()
@click.version_option(package_name="corpus-nlp")
@click.option("--verbose", is_flag=True, help="print the whole trace of an error, not only its one-line reason")
def main(verbose):
    """Annotate multilingual Parquet corpora with BERT token embeddings on Spark."""
    if verbose:
        os.environ["CORPUS_NLP_VERBOSE"] = "1"


LOG_LEVEL = click.Choice(["ALL", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF"], case_sensitive=False)


@main.command()
@click.option("--config", "config_path", type=click.Path(),
              help="YAML job config (`corpus-nlp init` writes a starter); none: the sample corpus inside the "
                   "package, the demo model in ~/.cache/corpus-nlp/models, the lake in ./lake")
@click.option("--input", "input_path", help="input corpus path (overrides input.path)")
@click.option("--output", "output_path", help="lake path (overrides output.path)")
@click.option("--model", "model_path", help="model bundle directory (overrides model.bundle)")
@click.option("--ner", "ner_path", help="NER directory from train-ner, or a token-classification bundle (overrides "
              "ner.model)")
@click.option("--no-ner", is_flag=True, help="annotate without NER, whatever ner.model says")
@click.option("--classify", "classify_path", help="sequence-classification bundle from prepare-model (overrides "
              "classify.model): a classifications table")
@click.option("--incremental/--no-incremental", default=None,
              help="annotate only partitions not yet done with this pipeline (overrides `incremental`)")
@click.option("--full-refresh", is_flag=True, default=None,
              help="redo every selected partition and remove those deleted from the input")
@click.option("--deleted-partitions", type=click.Choice(["keep", "remove"]),
              help="partitions the lake holds but the input no longer has: keep or remove their rows (overrides "
                   "`deleted_partitions`; default: removed by --full-refresh, kept otherwise)")
@click.option("--partition", "partitions", multiple=True, help="limit the run, e.g. --partition 'lang=de' (repeatable)")
@click.option("--dry-run", is_flag=True,
              help="print the partitions a run would annotate and why (new, changed files, other pipeline, done); "
                   "writes nothing")
@click.option("--log-level", type=LOG_LEVEL, help="Spark's log level (overrides spark.log_level; default ERROR)")
@click.option("--quiet", is_flag=True, help="no progress lines or notes: the summary and errors only")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: notes, progress, summary and errors as one JSON object per line")
@click.option("--show", default=5, show_default=True, help="print this many token rows at the end")
@friendly_errors
def annotate(config_path, input_path, output_path, model_path, ner_path, no_ner, classify_path, incremental,
             full_refresh, deleted_partitions, partitions, dry_run, log_level, quiet, log_format, show):
    """Run the annotation job described by --config (without it: the bundled sample corpus)."""
    from pipelines import log
    from pipelines.config import load_config

    log.configure(quiet=quiet, format=log_format)
    require_spark()
    config = load_config(config_path, {
        "input.path": input_path, "output.path": output_path, "model.bundle": model_path, "ner.model": "" if no_ner else ner_path,
        "classify.model": classify_path,
        "incremental": incremental, "full_refresh": full_refresh, "deleted_partitions": deleted_partitions,
        "partitions": list(partitions) or None,
        "spark.log_level": log_level,
    })
    if dry_run:
        from pipelines.run.dry_run import dry_run as plan_only

        report_dry_run(plan_only(config))
        return
    from pipelines.run.job import run_annotate

    result = run_annotate(config)
    report(result, 0 if quiet or log.as_json() else show)


def report_dry_run(plan) -> None:
    from pipelines import log

    if log.as_json():
        log.result("dry_run", "", **plan.as_dict())
        return
    mode = "incremental" if plan.incremental else "every selected partition"
    deleted = f", {len(plan.deleted)} deleted from the input" if plan.deleted else ""
    lines = [f"dry run ({mode}), nothing written: {plan.to_do} partitions to annotate, {plan.done} already done"
             + deleted, f"  input {plan.input_path} -> lake {plan.output_path}"]
    width = max((len(spec) for spec, _, _ in plan.partitions), default=0)
    lines += [f"  {spec:<{width}}  {action:<8}  {why}" for spec, action, why in plan.partitions]
    if plan.repetition:
        r = plan.repetition
        lines.append(f"  text to annotate: {r['sentences']:,} sentences, {r['distinct_sentences']:,} distinct; "
                     f"{r['repeated_char_share']:.1%} of its characters repeat earlier sentences "
                     "(reuse.sentences computes each once)")
    lines += [f"  note: {note}" for note in plan.notes]
    log.result("dry_run", "\n".join(lines))


# the manifest's timings the summary repeats (pipelines/run/phases.py says what each one covers)
TIMINGS = ("spark_start_s", "model_build_s", "ner_training_s", "plan_s", "reuse_s", "annotate_s", "write_s", "check_s", "other_s")


def summary(result) -> dict:
    """The run's outcome as one flat record: the text summary and the JSON one say the same things."""
    m = result.manifest
    c, timings = m["counts"], m.get("timings", {})
    annotate_s = timings.get("annotate_s", m["duration_s"])
    model, model_kind = model_that_ran(m)
    return {
        "run_id": result.run_id, "status": m["status"], "duration_s": m["duration_s"],
        "model": model, "model_kind": model_kind,
        "partitions_annotated": len(m["input"]["annotated_partitions"]),
        "partitions_already_done": m["input"]["skipped_as_done"],
        **deleted_partitions(m["input"]),
        "input_rows": c["input_rows"], "annotated_rows": c["annotated_rows"], "kept_empty_rows": c["kept_empty_rows"],
        "quarantined_rows": c["quarantined_rows"], "quarantined_by_reason": c["quarantined_by_reason"],
        "tokens": c["tokens"], **({"entities": c["entities"]} if "entities" in c else {}),
        "tokens_per_s": round(c["tokens"] / annotate_s, 1) if annotate_s else 0.0,
        **{k: timings[k] for k in TIMINGS if k in timings},
        **reuse_summary(m.get("reuse")),
        "tables": result.tables, **({"catalog_tables": result.catalog_tables} if result.catalog_tables else {}),
        "manifest": result.manifest_path,
    }


def reuse_summary(reuse: dict | None) -> dict:
    """Sentences seen and the share served from earlier occurrences (the run's shared set, the workers' memory)."""
    if not reuse:
        return {}
    return {"reuse_mode": reuse["mode"], "sentences_seen": reuse["sentences_seen"],
            "sentences_reused": reuse["served_from_run"] + reuse["served_from_worker"],
            "reuse_share": reuse["reuse_share"]}


def deleted_partitions(run_input: dict) -> dict:
    """The partitions deleted from the input that the run removed from the lake, or left there (specs)."""
    from pipelines.store.lake import partition_spec

    deleted = run_input.get("deleted_partitions") or {}
    return {f"deleted_partitions_{what}": [partition_spec(v) for v in deleted.get(what, [])]
            for what in ("removed", "kept")}


def model_that_ran(manifest: dict) -> tuple[str, str]:
    """(storage ref, kind) of the embeddings model; a run without embeddings names its classifier (the
    sequence classifier, else the token classifier) and its stage."""
    if manifest.get("model"):
        return manifest["model"]["storage_ref"], manifest["model"]["kind"]
    other = manifest.get("classify") or manifest.get("ner") or {}
    return other.get("storage_ref", "none"), other.get("stage", "none")


def report(result, show: int) -> None:
    from pipelines import log

    s = summary(result)
    if log.as_json():
        log.result("summary", "", **s)
        return
    lines = [f"\nrun {s['run_id']} {s['status']} in {s['duration_s']:.1f}s with model {s['model']} ({s['model_kind']})"]
    if s["model_kind"] == "demo":
        lines.append("  note: DEMO MODEL (random weights): the vectors carry no meaning")
    done, removed, kept = s["partitions_already_done"], s["deleted_partitions_removed"], s["deleted_partitions_kept"]
    if not s["partitions_annotated"]:
        lines.append(f"  {'' if removed else 'nothing to do: '}0 partitions to annotate, {done} already done with "
                     "this pipeline")
    else:
        lines.append(f"  partitions annotated {s['partitions_annotated']}"
                     + (f", skipped as already done {done}" if done else ""))
        reasons = ", ".join(f"{k} {v}" for k, v in s["quarantined_by_reason"].items())
        lines.append(f"  rows: input {s['input_rows']}, annotated {s['annotated_rows']}"
                     f" (kept empty {s['kept_empty_rows']}), quarantined {s['quarantined_rows']}"
                     + (f" ({reasons})" if reasons else ""))
        setup = [f"{label} {s[key]:.1f}s" for label, key in (("model build", "model_build_s"),
                 ("NER training", "ner_training_s")) if s.get(key)]
        lines.append(f"  tokens {s['tokens']} ({s['tokens_per_s']:,.0f} tokens/s over {s.get('annotate_s', 0):.1f}s "
                     "of annotating" + (f"; not counted: {', '.join(setup)}" if setup else "") + ")"
                     + (f", entities {s['entities']}" if "entities" in s else ""))
        phases = [f"{label} {s[key]:.1f}s" for label, key in (("Spark start", "spark_start_s"), ("plan", "plan_s"),
                  ("reuse", "reuse_s"), ("annotate", "annotate_s"), ("write", "write_s"), ("check", "check_s"), ("other", "other_s"))
                  if key in s and (s[key] or key != "reuse_s")]
        lines.append(f"  time: {', '.join(phases)}")
        if s.get("sentences_seen"):
            lines.append(f"  sentences {s['sentences_seen']}, {s['reuse_share']:.1%} served from earlier occurrences "
                         f"instead of the model (reuse: {s['reuse_mode']})")
    if removed:
        lines.append(f"  deleted from the input, removed from the lake: {', '.join(removed)}")
    if kept:
        lines.append(f"  deleted from the input, still in the lake: {', '.join(kept)} (--deleted-partitions remove, "
                     "or deleted_partitions: remove, removes them)")
    catalog = s.get("catalog_tables", {})
    lines += [f"  table {name}: {path}" + (f" ({catalog[name]})" if name in catalog else "")
              for name, path in s["tables"].items()]
    lines.append(f"  run manifest: {s['manifest']}")
    click.echo("\n".join(lines))
    if show > 0 and s["tokens"]:
        from pyspark.sql import SparkSession
        from pyspark.sql import functions as F
        from pyspark.sql.types import ArrayType

        tokens = result.read(SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()).drop("run_id")
        if "embedding" in tokens.columns and isinstance(tokens.schema["embedding"].dataType, ArrayType):
            tokens = tokens.withColumn("embedding", F.slice("embedding", 1, 3))  # float16/int8: binary, as stored
        tokens.orderBy("doc_id", "token_index").show(show, truncate=40)


@main.command()
@click.argument("path", required=False, type=click.Path())
@click.option("--train-ner", is_flag=True, help="the train-ner starter (conf/train_ner.yaml) instead")
@click.option("--force", is_flag=True, help="overwrite PATH if it exists")
def init(path, train_ner, force):
    """Write a starter config to PATH (default ./corpus-nlp.yaml, or ./corpus-nlp-train-ner.yaml): the
    sample corpus, the demo model and NER model, and a commented-out section for the real model."""
    from pathlib import Path

    from pipelines.resources import resources_dir

    source = resources_dir() / "conf" / ("train_ner.yaml" if train_ner else "local.yaml")
    target = Path(path or ("corpus-nlp-train-ner.yaml" if train_ner else "corpus-nlp.yaml"))
    if target.is_dir():
        target = target / source.name
    if target.exists() and not force:
        raise click.UsageError(f"{target} exists: choose another PATH, or --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes())
    command = "train-ner" if train_ner else "annotate"
    click.echo(f"wrote {target}: edit it, then `corpus-nlp {command} --config {target}`")


@main.command("report")
@click.argument("lake", type=click.Path())
@click.option("--run", "run_id", help="only this run's rows (the run_id column) and manifest")
@click.option("--out", type=click.Path(), help="HTML file to write (default: LAKE/_reports/report[-RUN].html)")
@click.option("--master", default="local[*]", show_default=True, help="Spark master (ignored under spark-submit)")
@friendly_errors
def report_cmd(lake, run_id, out, master):
    """Write one self-contained HTML page about the lake LAKE: documents and tokens per partition, quarantine
    reasons, sentence and document lengths, windows and padding, throughput, entities, data files."""
    from pipelines.config import SparkSettings
    from pipelines.tools.report import require_matplotlib, summary_lines, write_report
    from pipelines.spark.session import get_spark

    require_matplotlib()
    spark = get_spark(SparkSettings(master=master, app_name="corpus-nlp-report"), ["delta"])
    path, data = write_report(spark, lake, out, run_id)
    click.echo("\n".join(summary_lines(path, data)))


@main.command("log-config")
def log_config_cmd():
    """Print the path of the bundled log4j2 file that keeps Spark's JVM quiet (for spark-submit's
    --driver-java-options "-Dlog4j2.configurationFile=PATH")."""
    from pipelines.spark.session import log4j_config_path

    click.echo(log4j_config_path())


@main.command("pack-env")
@click.option("--out", default="dist/corpus-nlp-env.tar.gz", show_default=True, type=click.Path(),
              help="the archive to write (.tar.gz)")
@click.option("--wheel", type=click.Path(exists=True, dir_okay=False),
              help="the corpus-nlp wheel to pack (default: built from this source checkout)")
@friendly_errors
def pack_env_cmd(out, wheel):
    """Pack the executors' Python environment (this package and its base dependencies, without PySpark)
    for `spark-submit --archives OUT#env --conf spark.pyspark.python=./env/bin/python` (docs/platforms.md, "On a cluster")."""
    from pathlib import Path

    from pipelines.tools.pack_env import pack_env

    packed = pack_env(Path(out), Path(wheel) if wheel else None)
    how = "reused from the cache" if packed.cached else "built"
    click.echo(f"wrote {packed.path} ({packed.size_bytes / 2**20:.0f} MiB, {how} in {packed.seconds:.0f} s); "
               f"submit with: spark-submit --archives {packed.path}#env --conf spark.pyspark.python=./env/bin/python "
               "...")


@main.command("prepare-model")
@click.option("--from-dir", type=click.Path(),
              help="local Hugging Face checkpoint directory: a BERT encoder, or a fine-tuned BERT/DistilBERT "
                   "*ForTokenClassification / *ForSequenceClassification (labels from config.json's id2label)")
@click.option("--hf-id", help="Hugging Face hub id, e.g. bert-base-multilingual-cased (needs the hub)")
@click.option("--from-sparknlp", type=click.Path(),
              help="a Spark NLP BertEmbeddings saved with .write().save(DIR) (ONNX engine): its graph and vocabulary")
@click.option("--out", required=True, type=click.Path(), help="bundle directory to write")
@click.option("--precision", type=click.Choice(["fp32", "int8", "int8-static", "fp16"]), default="fp32",
              show_default=True,
              help="int8: dynamic quantization for CPUs (ONNX Runtime only); int8-static: calibrated on --calibrate "
                   "(ONNX Runtime and OpenVINO); fp16: for ONNX Runtime's CUDA provider on GPUs "
                   "(not with --from-sparknlp, which keeps the saved graph as it is)")
@click.option("--calibrate", type=click.Path(),
              help="int8-static: a Parquet corpus (its text column) or a text file, one sentence per line; the first "
                   "few hundred texts set the activation ranges")
@click.option("--min-cosine", type=float,
              help="instead of --precision: build fp32, int8 and (with --calibrate) int8-static, time each on ONNX "
                   "Runtime and OpenVINO (bf16 where the CPU has it) here, and keep the fastest whose per-token "
                   "cosine to fp32 is at least this, e.g. 0.999")
@click.option("--name", help="model name recorded in the manifest")
@friendly_errors
def prepare_model_cmd(from_dir, hf_id, from_sparknlp, out, precision, calibrate, min_cosine, name):
    """Convert a BERT checkpoint (or a fine-tuned classifier) into a model bundle (model.onnx, tokenizer.json,
    manifest.json)."""
    from pipelines.model.prepare import prepare_model

    if sum(map(bool, (from_dir, hf_id, from_sparknlp))) != 1:
        raise click.UsageError("give exactly one of --from-dir, --hf-id or --from-sparknlp")
    if from_sparknlp:
        from pipelines.model.sparknlp_io import bundle_from_sparknlp

        if precision != "fp32":
            raise click.UsageError("--precision does not apply to --from-sparknlp: the saved graph is kept as it is")
        bundle = bundle_from_sparknlp(from_sparknlp, out, name=name)
    else:
        if min_cosine is not None:
            from pipelines.model.choose import prepare_fastest

            if precision != "fp32":
                raise click.UsageError("--min-cosine chooses the precision itself: leave out --precision")
            bundle = prepare_fastest(out, min_cosine, calibrate, from_dir=from_dir, hf_id=hf_id, name=name)
        else:
            bundle = prepare_model(out, from_dir=from_dir, hf_id=hf_id, precision=precision, name=name,
                                   calibrate=calibrate)
    _describe(bundle)


@main.command("demo-model")
@click.option("--out", required=True, type=click.Path(), help="bundle directory to write")
@click.option("--mbert-shape", is_flag=True, help="random weights with bert-base-multilingual-cased's exact shape")
@click.option("--precision", type=click.Choice(["fp32", "int8"]), default="fp32", show_default=True)
@friendly_errors
def demo_model_cmd(out, mbert_shape, precision):
    """Build a random-weight BERT with a WordPiece vocabulary trained on the bundled sample corpus."""
    from pipelines.model import demo

    if mbert_shape:
        bundle = demo.build_mbert_shaped_random_model(out, None, precision=precision)
    else:
        bundle = demo.build_demo_model(out)
    _describe(bundle)


def _describe(bundle) -> None:
    m = bundle.manifest
    click.echo(f"bundle {bundle.path}: {m.name} ({m.kind}, {m.precision}), storage ref {m.storage_ref}, "
               f"{m.num_layers} layers x {m.dimension} dims, vocabulary {m.vocab_size}")
    if m.is_classifier:
        click.echo(f"  {m.model_type} {m.task}, {len(m.labels)} labels: {', '.join(m.labels)}")
    if m.selection:
        sel = m.selection
        for c in sel.candidates:
            click.echo(f"  {c['bundle']:<12} on {c['runtime']:<12} {c['precision']:<7} {c['tokens_per_s']:>9,.0f} "
                       f"tokens/s, lowest cosine {c['min_cosine']:.5f}")
        click.echo(f"  fastest with lowest cosine >= {sel.min_cosine_floor}: set stages.embeddings.runtime: "
                   f"{sel.runtime} and stages.embeddings.precision: {sel.precision}")
    if m.calibration:
        c = m.calibration
        click.echo(f"  calibrated on {c.sentences} texts of {c.corpus}: per-token cosine to fp32 lowest "
                   f"{c.min_cosine:.4f}, mean {c.mean_cosine:.5f}")


@main.command("jars")
@click.argument("verb", type=click.Choice(["fetch", "paths", "pom"]))
@click.argument("names", nargs=-1, type=click.Choice(["sparknlp", "delta"]))
def jars_cmd(verb, names):
    """The Spark NLP and Delta jars: fetch them through Maven, print their paths, or print the pom."""
    from pipelines.spark import jars

    raise SystemExit(jars.main([verb, *names]))


from pipelines.tools.train_ner import train_ner_cmd  # noqa: E402

main.add_command(train_ner_cmd)

if __name__ == "__main__":
    main()
