"""``corpus-nlp``: the command line. Thin: every command calls the library and reports errors plainly."""

from __future__ import annotations

import os

import click

from pipelines.cli_errors import friendly_errors


@click.group()
@click.version_option(package_name="corpus-nlp")
@click.option("--verbose", is_flag=True, help="print the whole trace of an error, not only its one-line reason")
def main(verbose):
    """Annotate multilingual Parquet corpora with BERT token embeddings on Spark."""
    if verbose:
        os.environ["CORPUS_NLP_VERBOSE"] = "1"


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(), help="YAML job config")
@click.option("--input", "input_path", help="input corpus path (overrides input.path)")
@click.option("--output", "output_path", help="lake path (overrides output.path)")
@click.option("--model", "model_path", help="model bundle directory (overrides model.bundle)")
@click.option("--ner", "ner_path", help="NER directory from train-ner (overrides ner.model)")
@click.option("--no-ner", is_flag=True, help="annotate without NER, whatever ner.model says")
@click.option("--incremental/--no-incremental", default=None,
              help="annotate only partitions not yet done with this pipeline (overrides `incremental`)")
@click.option("--full-refresh", is_flag=True, default=None, help="redo every selected partition")
@click.option("--partition", "partitions", multiple=True, help="limit the run, e.g. --partition 'lang=de' (repeatable)")
@click.option("--show", default=5, show_default=True, help="print this many token rows at the end")
@friendly_errors
def annotate(config_path, input_path, output_path, model_path, ner_path, no_ner, incremental, full_refresh,
             partitions, show):
    """Run the annotation job described by --config."""
    from pipelines.config import load_config
    from pipelines.job import run_annotate

    config = load_config(config_path, {
        "input.path": input_path, "output.path": output_path, "model.bundle": model_path, "ner.model": "" if no_ner else ner_path,
        "incremental": incremental, "full_refresh": full_refresh, "partitions": list(partitions) or None,
    })
    result = run_annotate(config)
    report(result, show)


def report(result, show: int) -> None:
    m = result.manifest
    c = m["counts"]
    click.echo(f"\nrun {result.run_id} {m['status']} in {m['duration_s']:.1f}s with model "
               f"{m['model']['storage_ref']} ({m['model']['kind']})")
    if m["model"]["kind"] == "demo":
        click.echo("  note: DEMO MODEL (random weights): the vectors carry no meaning")
    skipped = m["input"]["skipped_as_done"]
    click.echo(f"  partitions annotated {len(m['input']['annotated_partitions'])}"
               + (f", skipped as already done {skipped}" if skipped else ""))
    reasons = ", ".join(f"{k} {v}" for k, v in c["quarantined_by_reason"].items())
    click.echo(f"  rows: input {c['input_rows']}, annotated {c['annotated_rows']}"
               f" (kept empty {c['kept_empty_rows']}), quarantined {c['quarantined_rows']}"
               + (f" ({reasons})" if reasons else ""))
    rate = c["tokens"] / m["duration_s"] if m["duration_s"] else 0
    click.echo(f"  tokens {c['tokens']} ({rate:,.0f} tokens/s over the whole run)"
               + (f", entities {c['entities']}" if "entities" in c else ""))
    for name, path in result.tables.items():
        click.echo(f"  table {name}: {path}")
    click.echo(f"  run manifest: {result.manifest_path}")
    if show > 0 and c["tokens"]:
        from pyspark.sql import SparkSession
        from pyspark.sql import functions as F

        tokens = result.read(SparkSession.getActiveSession())
        tokens.drop("run_id").withColumn("embedding", F.slice("embedding", 1, 3)).orderBy(
            "doc_id", "token_index").show(show, truncate=40)


@main.command("prepare-model")
@click.option("--from-dir", type=click.Path(),
              help="local Hugging Face checkpoint directory: a BERT encoder, or a fine-tuned BERT/DistilBERT "
                   "*ForTokenClassification / *ForSequenceClassification (labels from config.json's id2label)")
@click.option("--hf-id", help="Hugging Face hub id, e.g. bert-base-multilingual-cased (needs the hub)")
@click.option("--from-sparknlp", type=click.Path(),
              help="a Spark NLP BertEmbeddings saved with .write().save(DIR) (ONNX engine): its graph and vocabulary")
@click.option("--out", required=True, type=click.Path(), help="bundle directory to write")
@click.option("--precision", type=click.Choice(["fp32", "int8", "fp16"]), default="fp32", show_default=True,
              help="int8: dynamic quantization for CPUs; fp16: for ONNX Runtime's CUDA provider on GPUs "
                   "(not with --from-sparknlp, which keeps the saved graph as it is)")
@click.option("--name", help="model name recorded in the manifest")
@friendly_errors
def prepare_model_cmd(from_dir, hf_id, from_sparknlp, out, precision, name):
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
        bundle = prepare_model(out, from_dir=from_dir, hf_id=hf_id, precision=precision, name=name)
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


@main.command("jars")
@click.argument("verb", type=click.Choice(["fetch", "paths", "pom"]))
@click.argument("names", nargs=-1, type=click.Choice(["sparknlp", "delta"]))
def jars_cmd(verb, names):
    """The Spark NLP and Delta jars: fetch them through Maven, print their paths, or print the pom."""
    from pipelines import jars

    raise SystemExit(jars.main([verb, *names]))


from pipelines.ner.cli import train_ner_cmd  # noqa: E402

main.add_command(train_ner_cmd)

if __name__ == "__main__":
    main()
