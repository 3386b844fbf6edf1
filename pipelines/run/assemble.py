"""What the config asks the job to run: the models in place (built or trained when the config allows),
the native stages with their roles, and the summaries of those models the run's fingerprint is made of."""

from __future__ import annotations

import time
from dataclasses import dataclass

from pipelines import log

from pipelines.annotate import sparknlp_engine
from pipelines.config import JobConfig
from pipelines.errors import JobError
from pipelines.store.remote_files import is_local, local_path
from pipelines.store.model_paths import has_file


@dataclass(frozen=True)
class RunModels:
    """The models a run uses, resolved once: the bundle (None when the run reads none) and the NER model
    (None: no NER), with the seconds it took to build or train the demo ones."""

    bundle: str | None
    ner: str | None
    timings: dict


def prepare_models(config: JobConfig) -> RunModels:
    """Build the demo model and train the demo NER model where the config asks for them and they are
    missing, before the run plans anything: their seconds are not annotate time."""
    timings = {"model_build_s": 0.0, "ner_training_s": 0.0}
    started = time.time()
    bundle = ensure_model(config) if uses_bundle(config) else None
    timings["model_build_s"] = round(time.time() - started, 3)
    ner = None
    if config.engine == "native":  # the sparknlp engine runs BertEmbeddings only
        started = time.time()
        ner = ensure_ner(config, bundle)
        timings["ner_training_s"] = round(time.time() - started, 3)
    return RunModels(bundle, ner, timings)


def uses_bundle(config: JobConfig) -> bool:
    """Whether the run reads model.bundle: the native engine's embeddings, or the sparknlp engine's import."""
    if config.engine == "native":
        return config.output.embeddings
    return sparknlp_engine.model_source(config) == "bundle"


def ensure_model(config: JobConfig) -> str:
    """The bundle directory to use, building the demo model first when the config allows it."""
    bundle = config.model.bundle
    if is_local(bundle) and not (local_path(bundle) / "manifest.json").exists():
        if not config.model.build_demo_if_missing:
            raise JobError(f"model bundle {bundle} not found: build it with `corpus-nlp prepare-model --from-dir "
                           f"CHECKPOINT --out {bundle}` (or `corpus-nlp demo-model --out {bundle}`)")
        from pipelines.model.demo import build_demo_model

        log.note(f"Model bundle {bundle} is missing: building the demo model (random weights) there...")
        build_demo_model(local_path(bundle))
    return bundle


def ensure_ner(config: JobConfig, bundle: str) -> str | None:
    """The NER directory to use (None: no NER), training the demo NER model when the config allows it."""
    ner = config.ner.model or None  # "" (--no-ner) turns NER off too
    if not ner or not is_local(ner) or (local_path(ner) / "ner.json").exists() or _is_bundle(ner):
        return ner
    if not config.ner.build_demo_if_missing:
        raise JobError(f"NER model {ner} not found: train one with `corpus-nlp train-ner --config "
                       f"conf/train_ner.yaml --model {bundle} --out {ner}`, or unset ner.model")
    # the demo NER model trains with NumPy (pipelines.ner.linear): no torch on the demo's path
    from pipelines.ner.demo import build_demo_ner

    log.note(f"NER model {ner} is missing: training the demo NER model on the bundled NER sample...")
    build_demo_ner(local_path(ner), bundle)
    return ner


def _is_bundle(path: str) -> bool:
    """A model bundle (prepare-model), as opposed to an NER directory (train-ner); any Hadoop path."""
    return has_file(path, "manifest.json")


def build_stages(config: JobConfig, bundle: str | None, columns: list[str], ner_dir: str | None = None):
    """The native stages: the text stages; BertEmbeddings (unless ``output.embeddings`` is off); with
    ``ner_dir``, NerDLModel (an NER directory) or a token classifier (a token-classification bundle),
    then NerConverter; with ``classify.model``, a sequence classifier."""
    from pipelines.annotate.stages import DocumentAssembler, MultilingualSentenceDetector, SentenceDetector, Tokenizer

    s = config.stages
    sd = s.sentence_detector
    if sd.kind == "pragmatic":
        detector = SentenceDetector(
            useAbbreviations=sd.use_abbreviations, detectLists=sd.detect_lists, customBounds=sd.custom_bounds,
            useCustomBoundsOnly=sd.use_custom_bounds_only, customBoundsStrategy=sd.custom_bounds_strategy)
    else:
        detector = MultilingualSentenceDetector(language=sd.language)
        if config.input.language_col and config.input.language_col in columns:
            detector.setLanguageCol(config.input.language_col)
    detector.setInputCols(["document"]).setOutputCol("sentence").setMinLength(sd.min_length).setMaxLength(sd.max_length)
    if sd.split_length:
        detector.setSplitLength(sd.split_length)
    tk = s.tokenizer
    tokenizer = (Tokenizer().setInputCols(["sentence"]).setOutputCol("token").setTargetPattern(tk.target_pattern)
                 .setExceptions(tk.exceptions).setCaseSensitiveExceptions(tk.case_sensitive_exceptions)
                 .setSplitChars(tk.split_chars).setMinLength(tk.min_length).setMaxLength(tk.max_length))
    if tk.split_pattern:
        tokenizer.setSplitPattern(tk.split_pattern)
    if tk.context_chars is not None:
        tokenizer.setContextChars(tk.context_chars)
    stages = [DocumentAssembler(inputCol=config.input.text_col), detector, tokenizer]
    embeddings = _embeddings_stage(config, bundle) if config.output.embeddings else None
    stages += [embeddings] if embeddings else []
    stages += _ner_stages(config, ner_dir, embeddings) if ner_dir else []
    stages += [_classify_stage(config)] if config.classify.model else []
    if len(stages) == 3:
        raise JobError("output.embeddings: false leaves no model to run: set ner.model to a token-classification "
                       "bundle or classify.model, or turn output.embeddings back on")
    return stages


def _embeddings_stage(config: JobConfig, bundle: str):
    from pipelines.annotate.stages import BertEmbeddings

    e = config.stages.embeddings
    embeddings = BertEmbeddings(
        modelPath=bundle, maxSentenceLength=e.max_sentence_length, batchSize=e.batch_size,
        maxBatchPieces=e.max_batch_pieces, pooling=e.pooling, intraOpThreads=e.intra_op_threads,
        runtime=e.runtime, precision=e.precision, unsupportedPrecision=e.unsupported_precision,
    ).setProviders(e.providers)
    embeddings._sync_with_bundle()
    embeddings.checkRuntime()  # a runtime or precision this machine lacks: one line before Spark starts
    return embeddings


def _ner_stages(config: JobConfig, ner_dir: str, embeddings) -> list:
    """NerDLModel (an NER directory, on the embeddings) or a token classifier (a bundle), and NerConverter."""
    from pipelines.ner.stages import NerConverter, NerDLModel

    if _is_bundle(ner_dir):
        tagger = _classifier_stage(config, ner_dir, "token-classification", "ner.model", config.ner.batch_size)
        tagger.setInputCols(["sentence", "token"]).setOutputCol("ner")
    else:
        if embeddings is None:
            raise JobError(f"ner.model {ner_dir} is an NER directory (NerDLModel), which tags the embeddings: it "
                           "needs output.embeddings: true (or use a token-classification bundle as ner.model)")
        tagger = NerDLModel(modelPath=ner_dir, includeConfidence=config.ner.include_confidence,
                            batchSize=config.ner.batch_size,
                            intraOpThreads=config.stages.embeddings.intra_op_threads)
        try:
            tagger.checkEmbeddingsMetadata(embeddings._column_metadata())
        except ValueError as e:
            raise JobError(str(e)) from None
    converter = NerConverter()
    if config.ner.white_list:
        converter.setWhiteList(config.ner.white_list)
    return [tagger, converter]


def _classify_stage(config: JobConfig):
    c = config.classify
    stage = _classifier_stage(config, c.model, "sequence-classification", "classify.model", c.batch_size)
    return stage.setInputCols([c.over, "token"]).setOutputCol("class").setCoalesceSentences(c.coalesce_sentences)


def _classifier_stage(config: JobConfig, path: str, task: str, key: str, batch_size: int):
    """Bert/DistilBert For Token/Sequence Classification on the bundle ``path``, as its manifest says;
    windows as the embeddings' (capped by the model's positions), one clear error for a wrong bundle."""
    from pipelines.classify import stages as classify_stages
    from pipelines.annotate.stages import verified_bundle

    if not has_file(path, "manifest.json"):
        raise JobError(f"{key} {path} is not a model bundle: build it with `corpus-nlp prepare-model --from-dir "
                       f"FINE_TUNED_CHECKPOINT --out {path}`")
    try:
        manifest = verified_bundle(path).manifest
    except Exception as e:
        raise JobError(f"{key} {path}: {str(e).splitlines()[0]}") from None
    if manifest.task != task:
        hint = {"embeddings": "model.bundle", "token-classification": "ner.model",
                "sequence-classification": "classify.model"}[manifest.task]
        raise JobError(f"{key} {path} is a {manifest.task} bundle, not a {task} one: it belongs in {hint}")
    prefix = {"bert": "Bert", "distilbert": "DistilBert"}[manifest.model_type]
    suffix = {"token-classification": "ForTokenClassification", "sequence-classification": "ForSequenceClassification"}
    e = config.stages.embeddings
    return getattr(classify_stages, prefix + suffix[task])(
        modelPath=path, batchSize=batch_size, intraOpThreads=e.intra_op_threads, maxBatchPieces=e.max_batch_pieces,
        maxSentenceLength=min(e.max_sentence_length, manifest.max_position_embeddings)).setProviders(e.providers)


def model_summaries(stages) -> tuple:
    """(embeddings model manifest or None, NER summary or None, sequence classifier summary or None)."""
    from pipelines.classify.stages import SequenceClassifierStage, TokenClassifierStage
    from pipelines.ner.stages import NerDLModel
    from pipelines.annotate.stages import BertEmbeddings

    def first(kind):
        return next((s for s in stages if isinstance(s, kind)), None)

    embeddings, ner_dl, tagger, sequence = (first(BertEmbeddings), first(NerDLModel), first(TokenClassifierStage),
                                            first(SequenceClassifierStage))
    ner = _ner_summary(ner_dl.model()) if ner_dl else _classifier_summary(tagger, "tags") if tagger else None
    return (embeddings.bundle().manifest if embeddings else None, ner,
            _classifier_summary(sequence, "labels") if sequence else None)


def _ner_summary(ner_model) -> dict | None:
    if ner_model is None:
        return None
    return {"path": str(ner_model.path), "storage_ref": ner_model.storage_ref, "tags": list(ner_model.tags)}


def _classifier_summary(stage, labels_key: str) -> dict:
    bundle = stage.bundle()
    m = bundle.manifest
    return {"path": str(bundle.path), "stage": type(stage).__name__, "storage_ref": m.storage_ref,
            "precision": m.precision, labels_key: list(m.labels)}


def model_summary(m, bundle_path) -> dict:
    return {
        "storage_ref": m.storage_ref, "kind": m.kind, "name": m.name, "precision": m.precision,
        "dimension": m.dimension, "bundle": str(bundle_path),
        **({"warning": "DEMO MODEL: random weights, the vectors carry no meaning"} if m.kind == "demo" else {}),
    }

