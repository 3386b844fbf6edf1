"""The job's configuration: YAML validated by typed pydantic models.

Every model forbids unknown keys, so a misspelt key is an error that names it.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines.errors import CorpusNlpError


M = TypeVar("M", bound=BaseModel)

# `model.bundle: demo`, `ner.model: demo` (and train-ner's `out: demo`): the demo models in the per-user
# cache, built on first use and shared by every directory a user runs from, so that an installed package
# works from anywhere. Write `./demo` for a directory named demo.
DEMO = "demo"


def demo_model_dir(kind: Literal["bert", "ner"]) -> str:
    """``~/.cache/corpus-nlp/models/demo-bert`` (or ``demo-ner``); ``CORPUS_NLP_CACHE_DIR`` moves it."""
    from pipelines.cache import cache_dir

    return str(cache_dir() / "models" / f"demo-{kind}")


def resolve_demo(value: str | None, kind: Literal["bert", "ner"]) -> str | None:
    return demo_model_dir(kind) if value == DEMO else value


def bundled_path(*parts: str) -> str:
    """A file or directory of the installed package's resources (the sample corpus, the NER sample)."""
    from pipelines.resources import resources_dir

    return str(resources_dir().joinpath(*parts))


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


SPARKNLP_NEEDS_CLASSIC = ("engine: sparknlp needs a classic Spark driver (Spark NLP's annotators live in the "
                          "driver's JVM), and Spark Connect has none: use engine: native")


class SparkSettings(StrictModel):
    master: str = "local[*]"
    remote: str | None = Field(
        None, description="Spark Connect: sc://host:port (a running server, with Delta for the default lake), or "
        "local / local[N] to start one in this process (PySpark 4); the native engine runs there, Spark NLP cannot")
    app_name: str = "corpus-nlp"
    driver_memory: str = "4g"
    arrow_batch_rows: int = Field(256, ge=1, description="rows per Arrow batch sent to a Python worker")
    tasks_per_core: int = Field(
        4, ge=0, description="spread the rows to annotate over at least this many tasks per core, so no core "
        "idles behind one big task; 0 keeps the input's partitioning")
    short_run_jvm: bool = Field(
        True, description="a JVM the job starts itself is set up for batch runs of minutes: it maps an archive "
        "of the classes Spark loads (made when the first run exits, in ~/.cache/corpus-nlp/jvm) and compiles "
        "only really hot code with C2 (-XX:CompileThresholdScaling=3)")
    log_level: Literal["ALL", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF"] = Field(
        "ERROR", description="Spark's log level, set as soon as the session exists (--log-level)")
    conf: dict[str, str] = Field(default_factory=dict, description="extra Spark settings")

    @field_validator("log_level", mode="before")
    @classmethod
    def upper_case_level(cls, value):
        return value.upper() if isinstance(value, str) else value

    @field_validator("remote")
    @classmethod
    def _connect_url(cls, value):
        if value is not None and not re.fullmatch(r"(sc://\S+|local(\[(\d+|\*)\])?)", value):
            raise ValueError(f"{value!r} is not a Spark Connect address: sc://host:port, local or local[N]")
        return value


# A table name as the catalog spells it: `table`, `db.table` or (Unity Catalog) `catalog.schema.table`.
TABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$"
DATABASE_NAME = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$"


def _catalog_name(value: str | None, pattern: str, what: str) -> str | None:
    if value is not None and not re.fullmatch(pattern, value):  # fullmatch: `$` alone lets a trailing newline by
        raise ValueError(f"{value!r} is not {what} (letters, digits, underscores)")
    return value


class InputSettings(StrictModel):
    path: str = Field(default_factory=lambda: bundled_path("sample_corpus"),
                      description="the corpus; default: the sample corpus inside the installed package")
    table: str | None = Field(None, description="read the corpus from this catalog table (spark.table) instead of a path, "
                              "e.g. corpora.news; exclusive with path")
    format: Literal["parquet"] = "parquet"
    id_col: str = "doc_id"
    text_col: str = "text"
    language_col: str | None = Field("lang", description="column with each row's language code, if present")

    @field_validator("table")
    @classmethod
    def _table_name(cls, value):
        return _catalog_name(value, TABLE_NAME, "a table name: table, db.table or catalog.schema.table")

    @model_validator(mode="after")
    def _path_or_table(self):
        if self.table and "path" in self.model_fields_set:
            raise ValueError("give input.path or input.table, not both")
        return self

    @property
    def source(self) -> str:
        """What the corpus is, for messages and the manifest: the table's name, else the path."""
        return f"table {self.table}" if self.table else self.path


class OutputSettings(StrictModel):
    path: str = "lake"
    format: Literal["delta", "parquet"] = Field(
        "delta", description="delta: one transaction per table per run, conflicts detected; parquet: plain "
        "directories with dynamic partition overwrite (weaker guarantees, see docs/lake.md)")
    annotations: bool = Field(False, description="also write the Spark NLP annotation columns")
    target_file_mb: float = Field(
        128, ge=0, description="about this many MiB per data file: each partition of a table gets one file, or "
        "one per this size (the tables with vectors: the input clustered by partition and size before the model "
        "pass; the others: Spark's REBALANCE before the write); 0: Spark's default, a file per task per partition")
    embedding_dtype: Literal["float32", "float16", "int8"] = Field(
        "float32", description="float16: the embedding column holds little-endian half floats as binary; int8: "
        "binary, a float32 scale then one int8 per dimension (pipelines.annotate.tables.decode_int8)")
    embeddings: bool = Field(
        True, description="compute BertEmbeddings and write the embedding column; false: the token table keeps "
        "its tokens (and the classifiers' results) without vectors, and model.bundle is not used (needs a "
        "classifier: ner.model as a token-classification bundle, or classify.model)")
    database: str | None = Field(
        None, description="also register the lake's tables in this catalog database (schema; "
        "`catalog.schema` on Unity Catalog) as tables over the lake's Delta paths: spark.table('db.token_embeddings')")
    table_prefix: str = Field("", pattern=r"^[A-Za-z0-9_]*$",
                              description="prefix of the registered tables' names, e.g. news_ (news_token_embeddings)")

    @field_validator("database")
    @classmethod
    def _database_name(cls, value):
        return _catalog_name(value, DATABASE_NAME, "a database name: db, or catalog.schema on Unity Catalog")

    @model_validator(mode="after")
    def _tables_are_delta(self):
        if self.database and self.format != "delta":
            raise ValueError("output.database registers Delta tables: it needs output.format: delta")
        if self.table_prefix and not self.database:
            raise ValueError("output.table_prefix needs output.database")
        return self

    def table_name(self, table: str) -> str | None:
        """The catalog name of one of the lake's tables (None when the lake is not registered)."""
        return f"{self.database}.{self.table_prefix}{table}" if self.database else None


class NerSettings(StrictModel):
    """NerDLModel + NerConverter after the embeddings; off while `model` is unset."""

    model: str | None = Field(None, description="NER directory (corpus-nlp train-ner), or a token-classification "
                              "bundle (corpus-nlp prepare-model --from-dir FINE_TUNED_CHECKPOINT); `demo`: the "
                              "per-user demo NER model; unset: no NER")
    build_demo_if_missing: bool = Field(
        False, description="train the demo NER model there when missing (NumPy, a few seconds; no torch)")
    include_confidence: bool = True
    batch_size: int = Field(8, ge=1)
    white_list: list[str] = Field(default_factory=list, description="keep only these entity labels")

    @field_validator("model")
    @classmethod
    def demo_ner_dir(cls, value):
        return resolve_demo(value, "ner")


class ClassifySettings(StrictModel):
    """A fine-tuned sequence classifier (sentiment, topic) in the same pass; off while `model` is unset."""

    model: str | None = Field(None, description="sequence-classification bundle (corpus-nlp prepare-model "
                              "--from-dir FINE_TUNED_CHECKPOINT); unset: no classifications table")
    over: Literal["document", "sentence"] = Field(
        "document", description="classify each document (its tokens as one sequence) or each sentence")
    coalesce_sentences: bool = Field(
        False, description="over: sentence only: one result per document, the mean of its sentences' "
        "probabilities (Spark NLP's coalesceSentences)")
    batch_size: int = Field(8, ge=1, description="sequences per ONNX Runtime call, at most")


class PolicySettings(StrictModel):
    """What happens to rows that cannot be annotated as they are; every row ends somewhere."""

    empty_text: Literal["quarantine", "keep"] = Field(
        "quarantine", description="null, empty or whitespace-only text: quarantine, or keep as an empty document")
    duplicate_id: Literal["quarantine", "fail"] = Field(
        "quarantine", description="a doc id seen twice in one run: quarantine the later rows, or fail the run")
    max_chars: int = Field(2_000_000, ge=1, description="documents longer than this follow `too_long`")
    too_long: Literal["window", "quarantine"] = Field(
        "window", description="window: annotate in bounded chunks anyway; quarantine: set aside")
    quarantine_text_max_chars: int = Field(
        10_000, ge=0, description="quarantine rows keep the original text up to this length")
    max_error_rows: int = Field(
        100, ge=0, description="rows whose processing raised go to quarantine (reason error); more than this "
        "many fail the run")


class ModelSettings(StrictModel):
    bundle: str = Field(DEMO, validate_default=True, description="native engine: model bundle directory; `demo`: "
                        "the per-user demo model (~/.cache/corpus-nlp/models/demo-bert)")
    build_demo_if_missing: bool = Field(True, description="native engine: build the demo model there if missing")
    sparknlp_pretrained: str = Field("bert_base_multilingual_cased", description="sparknlp engine: pretrained name")
    sparknlp_lang: str = Field("xx", description="sparknlp engine: pretrained model language")
    sparknlp_model_path: str | None = Field(None, description="sparknlp engine: a saved BertEmbeddings instead")

    @field_validator("bundle")
    @classmethod
    def demo_bundle_dir(cls, value):
        return resolve_demo(value, "bert")


class SentenceDetectorSettings(StrictModel):
    kind: Literal["multilingual", "pragmatic"] = Field(
        "multilingual", description="multilingual: sentencex's rules for ~300 languages (MultilingualSentenceDetector); "
        "pragmatic: Spark NLP's SentenceDetector rules, sentence for sentence (they find no boundary in 。 । ؟ text)")
    language: str = Field("xx", description="multilingual: rules' language when the row has none")
    use_abbreviations: bool = Field(True, description="pragmatic: Spark NLP's abbreviation lists")
    detect_lists: bool = Field(True, description="pragmatic: break before list items")
    custom_bounds: list[str] = Field(default_factory=list, description="pragmatic: Java regexes that end a sentence")
    custom_bounds_strategy: Literal["none", "prepend", "append"] = "none"
    use_custom_bounds_only: bool = False
    min_length: int = Field(0, ge=0)
    max_length: int = Field(99999, ge=1)
    split_length: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _pragmatic_only(self):
        if self.kind == "multilingual" and (self.custom_bounds or self.use_custom_bounds_only):
            raise ValueError("custom_bounds and use_custom_bounds_only need kind: pragmatic")
        return self


class TokenizerSettings(StrictModel):
    target_pattern: str = r"\S+"
    context_chars: list[str] | None = None  # None: Spark NLP's default set
    exceptions: list[str] = Field(default_factory=list)
    case_sensitive_exceptions: bool = True
    split_chars: list[str] = Field(default_factory=list)
    split_pattern: str | None = Field(None, description="Java regex splitting tokens inside; may be zero-width")
    min_length: int = Field(0, ge=0)
    max_length: int = Field(99999, ge=1)


class EmbeddingsSettings(StrictModel):
    max_sentence_length: int = Field(128, ge=3, le=512)
    batch_size: int = Field(
        32, ge=1, description="windows per ONNX Runtime call, at most; the embedder cuts its length-sorted "
        "windows where padding costs least (the stage's own default is Spark NLP's 8)")
    max_batch_pieces: int = Field(
        1024, ge=0, description="padded WordPieces per ONNX Runtime call, at most (0: no cap); CPU kernels "
        "slow down on calls much above ~1,000 pieces, GPUs want larger ones")
    max_tokens_per_chunk: int = Field(
        16384, ge=64, description="tokens embedded at once in a worker: bounds memory, whatever the document "
        "size; the embedder sorts the windows of one chunk by length, so larger chunks pad less")
    pooling: Literal["first", "mean"] = "first"
    intra_op_threads: int = Field(0, ge=0, description="0: spark.task.cpus")
    providers: list[str] = Field(
        default_factory=lambda: ["CPUExecutionProvider"],
        description="ONNX Runtime execution providers, e.g. [CUDAExecutionProvider, CPUExecutionProvider]")
    runtime: Literal["onnxruntime", "openvino"] = Field(
        "onnxruntime", description="what runs the model: ONNX Runtime, or OpenVINO (the openvino extra; faster fp32 "
        "with several threads, and bf16); both read the same bundle (not --precision int8 ones on OpenVINO)")
    precision: Literal["bundle", "bf16"] = Field(
        "bundle", description="bundle: the precision of the bundle's weights (fp32, int8, int8-static); bf16: "
        "OpenVINO computes an fp32 bundle in bfloat16 (CPUs with AVX-512 BF16 or AMX: ~2x fp32's speed)")
    unsupported_precision: Literal["fail", "fp32"] = Field(
        "fail", description="a CPU without bf16 arithmetic: fail with one line, or run fp32 with a warning (the "
        "run's embedder counters then show bf16_fallbacks)")

    @model_validator(mode="after")
    def _bf16_needs_openvino(self):
        if self.precision == "bf16" and self.runtime != "openvino":
            raise ValueError("precision: bf16 needs runtime: openvino (ONNX Runtime has no bf16 CPU kernels)")
        return self


class ReuseSettings(StrictModel):
    """Each distinct sentence through the model once (pipelines.annotate.reuse): exact, so not in the fingerprint."""

    sentences: Literal["auto", "run", "lake", "worker", "off"] = Field(
        "auto", description="run: a key pass finds the run's repeated sentences and computes each once, before the "
        "model pass; lake: run, and sentences computed by earlier runs come from the lake's sentence_cache table "
        "(Delta), where this run adds its own; worker: the Python workers of an executor compute a sentence "
        "about once between them (no extra pass); auto: worker on a local master, and on a cluster run when the "
        "input has at least `run_min_chars` characters, else worker; off: every occurrence through the model")
    run_min_chars: int = Field(
        2_000_000, ge=0, description="auto on a cluster: the input size from which the key pass pays for itself "
        "(docs/performance.md)")
    max_shared_mb: float = Field(
        512.0, ge=0, description="run: the run's repeated sentences' outputs shipped to every executor, at most "
        "(the most repeated first); the rest fall back to the workers' memory")
    worker_cache_mb: float = Field(
        64.0, ge=0, description="sentences a Python worker keeps after computing them, least recently used out first")
    executor_cache_mb: float = Field(
        1024.0, ge=0, description="sentences kept on each executor's local disk for all its Python workers (the "
        "oldest out first; removed with the Spark application); 0: each worker keeps only its own")
    cache_runs: int = Field(
        7, ge=1, description="lake: an entry of the sentence cache that none of the last this many runs used is "
        "removed; the table holds at most cache_runs x max_shared_mb")


class StageSettings(StrictModel):
    sentence_detector: SentenceDetectorSettings = Field(default_factory=SentenceDetectorSettings)
    tokenizer: TokenizerSettings = Field(default_factory=TokenizerSettings)
    embeddings: EmbeddingsSettings = Field(default_factory=EmbeddingsSettings)


class JobConfig(StrictModel):
    engine: Literal["native", "sparknlp"] = "native"
    incremental: bool = Field(False, description="annotate only partitions not yet done with this pipeline")
    partitions: list[str] = Field(default_factory=list, description="limit the run, e.g. ['lang=de']")
    full_refresh: bool = Field(False, description="redo every partition even when incremental, and remove the "
                               "partitions deleted from the input: the lake becomes the annotation of today's input")
    deleted_partitions: Literal["keep", "remove"] | None = Field(
        None, description="partitions the lake holds but the input no longer has (within `partitions`): keep their "
        "rows, or remove them in the run's own transactions; unset: removed by a full refresh, kept (and named) "
        "otherwise")
    spark: SparkSettings = Field(default_factory=SparkSettings)
    input: InputSettings = Field(default_factory=InputSettings)
    output: OutputSettings = Field(default_factory=OutputSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    policies: PolicySettings = Field(default_factory=PolicySettings)
    ner: NerSettings = Field(default_factory=NerSettings)
    classify: ClassifySettings = Field(default_factory=ClassifySettings)
    stages: StageSettings = Field(default_factory=StageSettings)
    reuse: ReuseSettings = Field(default_factory=ReuseSettings)

    @property
    def removes_deleted_partitions(self) -> bool:
        return (self.deleted_partitions or ("remove" if self.full_refresh else "keep")) == "remove"

    @model_validator(mode="after")
    def _full_refresh_removes_deleted_partitions(self):
        if self.full_refresh and self.deleted_partitions == "keep":
            raise ValueError("full_refresh (--full-refresh) makes the lake the annotation of today's input, so it "
                             "removes the partitions deleted from the input, but deleted_partitions is keep: set "
                             "deleted_partitions: remove (--deleted-partitions remove), or leave out full_refresh")
        return self

    @model_validator(mode="after")
    def _sentence_cache_needs_delta(self):
        if self.reuse.sentences == "lake" and self.output.format != "delta":
            raise ValueError("reuse.sentences: lake keeps the sentence cache in a Delta table of the lake: set "
                             "output.format: delta, or reuse.sentences: run")
        return self

    @model_validator(mode="after")
    def _classifiers_need_the_native_engine(self):
        if self.engine == "sparknlp" and self.spark.remote:
            raise ValueError(f"spark.remote {self.spark.remote}: {SPARKNLP_NEEDS_CLASSIC}")
        wants = [what for what, on in (("classify.model", self.classify.model),
                                       ("output.embeddings: false", not self.output.embeddings)) if on]
        if wants and self.engine == "sparknlp":
            raise ValueError(f"{' and '.join(wants)} need engine: native (the sparknlp engine runs "
                             "BertEmbeddings only: Spark NLP 5.5.3 registers every ONNX model it imports under "
                             "one file name, model.onnx, so a second model in one Spark application fails or "
                             "runs the wrong graph)")
        if self.output.embedding_dtype == "int8" and (self.output.annotations or self.engine == "sparknlp"):
            raise ValueError("output.embedding_dtype: int8 needs engine: native and output.annotations: false "
                             "(the token table is then written straight from the workers); use float16 otherwise")
        if wants and self.output.annotations:
            raise ValueError(f"{' and '.join(wants)} cannot be combined with output.annotations: true yet")
        return self


class ConfigError(CorpusNlpError, ValueError):
    """A configuration problem, phrased for the person who wrote the file."""


def load_config(path: str | Path | None, overrides: dict | None = None) -> JobConfig:
    """Read and validate the job's YAML (None: every default, i.e. the bundled sample corpus and the demo
    model); ``overrides`` are dotted keys, e.g. {"input.path": "/data"}."""
    return load_yaml_config(path, JobConfig, overrides, example="`corpus-nlp init PATH` to write a starter config")


def parse_config(raw: dict, source: str = "config") -> JobConfig:
    return validate(raw, JobConfig, source)


def load_yaml_config(path: str | Path | None, model: type[M], overrides: dict | None = None,
                     example: str = "") -> M:
    """Read a YAML file into ``model``, after applying dotted-key ``overrides`` (None values are skipped).
    No path: the model's defaults, with the overrides."""
    if path is None:
        return _with_overrides({}, model, overrides, "defaults")
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found" + (f" (try {example})" if example else ""))
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of settings, not {type(raw).__name__}")
    return _with_overrides(raw, model, overrides, str(path))


def _with_overrides(raw: dict, model: type[M], overrides: dict | None, source: str) -> M:
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return validate(raw, model, source=source)


def validate(raw: dict, model: type[M], source: str = "config") -> M:
    """``model.model_validate`` with one error message a person can act on, naming every bad key."""
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            where = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown key '{where}'{_suggestion(model, err['loc'])}")
            else:
                problems.append(f"'{where}': {err['msg']}")
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None


def _suggestion(model: type[BaseModel], loc: tuple) -> str:
    """' (did you mean 'text_col'?)' for a misspelt key, from the fields allowed at that level."""
    for key in loc[:-1]:
        field = model.model_fields.get(str(key))
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return ""
        model = field.annotation
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
