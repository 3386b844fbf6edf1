"""``corpus-nlp train-ner``: registered on the main group in pipelines/tools/cli.py."""

from __future__ import annotations

import click

from pipelines.tools.cli_errors import friendly_errors


def require_torch() -> None:
    """Training needs PyTorch, an optional extra: say what to install before any other work."""
    from pipelines.ner.train import require_torch as check

    check()


@click.command("train-ner")
@click.option("--config", "config_path", type=click.Path(),
              help="YAML (`corpus-nlp init --train-ner` writes one); none: the bundled NER sample, the demo model")
@click.option("--train", "train_file", type=click.Path(), help="training CoNLL file (overrides train)")
@click.option("--dev", "dev_file", type=click.Path(), help="dev CoNLL file (overrides dev)")
@click.option("--model", "bundle", type=click.Path(), help="embeddings model bundle (overrides model.bundle)")
@click.option("--out", "out_dir", type=click.Path(), help="NER_DIR to write (overrides out)")
@click.option("--epochs", type=int, help="overrides training.epochs")
@friendly_errors
def train_ner_cmd(config_path, train_file, dev_file, bundle, out_dir, epochs):
    """Train the NER tagger (char-CNN + BiLSTM + CRF) on CoNLL over a bundle's BERT embeddings."""
    require_torch()
    from pipelines.ner.config import load_train_ner_config
    from pipelines.ner.train import train_from_config

    config = load_train_ner_config(config_path, {"train": train_file, "dev": dev_file, "model.bundle": bundle,
                                                 "out": out_dir, "training.epochs": epochs})
    result = train_from_config(config, log=lambda m: click.echo(m))
    m = result.metrics["dev"]["micro"]
    click.echo(f"\nNER model {result.path}: dev entity F1 {m['f1']:.4f} (P {m['precision']:.4f}, "
               f"R {m['recall']:.4f}) on embeddings {result.model.storage_ref}; use it with "
               f"NerDLModel.loadSavedModel({str(result.path)!r})")
