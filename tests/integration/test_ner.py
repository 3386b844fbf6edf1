"""NER in real Spark: training reaches F1 on held-out names, one fused pass, Spark NLP's rules, the storage ref.

The training data is generated here: news-style templates in six languages whose entities can only be
told apart by their context ("X said", "in X", "X Inc"), with names made of random syllables; the
held-out sentences use names that never occur in training.
"""

import json
import random
import shutil

import numpy as np
import pytest
from chispa import assert_df_equality
from click.testing import CliRunner
from lake_helpers import job_config, write_corpus, read_table
from pyspark.ml import Pipeline, PipelineModel
from pyspark.sql import functions as F

from pipelines.annotation import spark_type
from pipelines.tools.cli import main
from pipelines.run.job import JobError, run_annotate
from pipelines.ner.conll import write_conll
from pipelines.ner.model import NerModel, NerModelError
from pipelines.ner.stages import NerConverter, NerDLModel
from pipelines.ner.tables import ENTITY_COLUMNS, with_entities
from pipelines.ner.tags import entities
from pipelines.ner.train import train_ner
from pipelines.annotate.stages import BertEmbeddings, DocumentAssembler, MultilingualSentenceDetector, Tokenizer

# --- synthetic multilingual data -----------------------------------------------------------------

SYL = ["ka", "lo", "mi", "ren", "tor", "va", "shi", "bel", "dor", "mun", "rik", "sa", "ton", "wel", "zar",
       "ne", "gu", "pa", "lin", "ster", "ho", "qui", "fen", "dra"]
CYR = ["ка", "ло", "ми", "рен", "тор", "ва", "ши", "бел", "дор", "мун", "рик", "са", "тон", "зар", "не", "гу"]
HAN = list("张王李赵刘陈杨黄周吴徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董潘袁蔡蒋余于杜叶程魏苏吕丁任沈姚卢")

TEMPLATES = {
    "en": ["{PER} said on Monday that {ORG} will open an office in {LOC} .",
           "The mayor of {LOC} met {PER} yesterday .",
           "{ORG} announced record profits , according to {PER} .",
           "Shares of {ORG} rose in {LOC} after the report .",
           "{PER} lives in {LOC} and works for {ORG} .",
           "The weather was cold and the trains were late ."],
    "de": ["{PER} sagte am Montag , dass {ORG} ein Büro in {LOC} eröffnet .",
           "Der Bürgermeister von {LOC} traf gestern {PER} .",
           "{ORG} meldete Rekordgewinne , sagte {PER} .",
           "{PER} wohnt in {LOC} und arbeitet für {ORG} .",
           "Das Wetter war kalt und die Züge kamen spät ."],
    "fr": ["{PER} a déclaré lundi que {ORG} ouvrira un bureau à {LOC} .",
           "Le maire de {LOC} a rencontré {PER} hier .",
           "{ORG} a annoncé des bénéfices records , selon {PER} .",
           "{PER} habite à {LOC} et travaille pour {ORG} .",
           "Il faisait froid et les trains étaient en retard ."],
    "es": ["{PER} dijo el lunes que {ORG} abrirá una oficina en {LOC} .",
           "El alcalde de {LOC} se reunió ayer con {PER} .",
           "{PER} vive en {LOC} y trabaja para {ORG} ."],
    "ru": ["{PER} заявил в понедельник , что {ORG} откроет офис в {LOC} .",
           "Мэр города {LOC} встретился с {PER} .",
           "{PER} живёт в {LOC} и работает в {ORG} ."],
    "zh": ["{PER}说{ORG}将在{LOC}开设办事处。", "{LOC}市长昨天会见了{PER}。", "{PER}住在{LOC}，在{ORG}工作。"],
}
ORG_SUFFIX = {"en": ["Inc", "Corp", "Ltd"], "de": ["GmbH", "AG"], "fr": ["SA", "Groupe"], "es": ["SA", "Grupo"],
              "ru": ["Групп"], "zh": ["公司", "集团"]}


def _latin(rng, n):
    return "".join(rng.choice(SYL) for _ in range(n)).capitalize()


def _names(rng, lang, count):
    out = {"PER": set(), "LOC": set(), "ORG": set()}
    while any(len(v) < count for v in out.values()):
        if lang == "zh":
            per = [rng.choice(HAN) + rng.choice(HAN) + rng.choice(HAN)]
            loc = [rng.choice(HAN) + rng.choice(HAN)]
            org = [rng.choice(HAN) + rng.choice(HAN)]
        elif lang == "ru":
            cyr = lambda n: "".join(rng.choice(CYR) for _ in range(n)).capitalize()  # noqa: E731
            per, loc, org = [cyr(2), cyr(3)], [cyr(3)], [cyr(2)]
        else:
            per, loc, org = [_latin(rng, 2), _latin(rng, 3)], [_latin(rng, 3)], [_latin(rng, 2)]
        out["PER"].add(tuple(per))
        out["LOC"].add(tuple(loc))
        out["ORG"].add(tuple(org))
    return {k: sorted(v)[:count] for k, v in out.items()}


def generate(seed=0, per_template=12, names_per_type=40, held_out_fraction=0.25):
    """(train, test) lists of (lang, tokens, tags); test uses only names never seen in train."""
    rng = random.Random(seed)
    train, test = [], []
    for lang, templates in TEMPLATES.items():
        names = _names(rng, lang, names_per_type)
        cut = int(names_per_type * (1 - held_out_fraction))
        pools = {"train": {k: v[:cut] for k, v in names.items()}, "test": {k: v[cut:] for k, v in names.items()}}
        for split, out, n in (("train", train, per_template), ("test", test, max(2, per_template // 3))):
            for template in templates:
                for _ in range(n):
                    tokens, tags = [], []
                    for part in template.split(" ") if lang != "zh" else _zh_parts(template):
                        slot = part if part in ("{PER}", "{LOC}", "{ORG}") else None
                        if slot is None:
                            tokens.append(part)
                            tags.append("O")
                            continue
                        kind = slot[1:4]
                        words = list(rng.choice(pools[split][kind]))
                        if kind == "ORG":
                            words.append(rng.choice(ORG_SUFFIX[lang]))
                        if lang == "zh":
                            words = [ch for w in words for ch in w]
                        tokens += words
                        tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1)
                    out.append((lang, tokens, tags))
    return train, test


def _zh_parts(template):
    parts, i = [], 0
    while i < len(template):
        if template[i] == "{":
            j = template.index("}", i)
            parts.append(template[i : j + 1])
            i = j + 1
        else:
            parts.append(template[i])
            i += 1
    return parts


def text_of(lang, tokens):
    """The sentence as text (and each token's start offset): no spaces in Chinese."""
    sep = "" if lang == "zh" else " "
    starts, pos = [], 0
    for t in tokens:
        starts.append(pos)
        pos += len(t) + len(sep)
    return sep.join(tokens), starts


def documents(sentences, per_doc=2):
    """Held-out sentences joined into documents of one language, with gold (begin, end, type) spans."""
    by_lang: dict[str, list] = {}
    for lang, tokens, tags in sentences:
        by_lang.setdefault(lang, []).append((tokens, tags))
    docs = []
    for lang, items in by_lang.items():
        for d in range(0, len(items), per_doc):
            text, gold = "", set()
            for tokens, tags in items[d : d + per_doc]:
                if text and lang != "zh":
                    text += " "
                sentence, starts = text_of(lang, tokens)
                for kind, first, last in entities(tags):
                    gold.add((len(text) + starts[first], len(text) + starts[last] + len(tokens[last]) - 1, kind))
                text += sentence
            docs.append((f"{lang}-{d}", text, gold))
    return docs


def f1(gold: set, predicted: set) -> float:
    tp = len(gold & predicted)
    return 2 * tp / (len(gold) + len(predicted)) if gold or predicted else 1.0


# --- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ner-data")
    train, test = generate(seed=0)
    write_conll(root / "train.conll", [(t, g) for _, t, g in train])
    write_conll(root / "test.conll", [(t, g) for _, t, g in test])
    return {"root": root, "train": root / "train.conll", "test": root / "test.conll", "test_sentences": test}


@pytest.fixture(scope="module")
def trained(data, demo_bundle, tmp_path_factory):
    out = tmp_path_factory.mktemp("ner") / "synthetic-ner"
    return train_ner(data["train"], None, demo_bundle.path, out, epochs=10, test_file=data["test"], log=None)


@pytest.fixture(scope="module")
def docs(data):
    return documents(data["test_sentences"]) + [("null-1", None, set()), ("empty-1", "", set())]


def stages(bundle, ner_dir, **ner):
    # inputCols have no defaults (as in Spark NLP); the multilingual detector is the one this test was written on
    return [DocumentAssembler(), MultilingualSentenceDetector(inputCols=["document"]), Tokenizer(inputCols=["sentence"]),
            BertEmbeddings.loadSavedModel(str(bundle)),
            NerDLModel(modelPath=str(ner_dir), includeConfidence=True, **ner), NerConverter()]


@pytest.fixture(scope="module")
def annotated(spark, docs, demo_bundle, trained):
    df = spark.createDataFrame([(d, t) for d, t, _ in docs], "doc_id string, text string")
    return Pipeline(stages=stages(demo_bundle.path, trained.path)).fit(df).transform(df).cache()


# --- (a) training ----------------------------------------------------------------------------------
def test_training_reaches_f1_on_sentences_with_held_out_names(trained, demo_bundle):
    test = trained.metrics["test"]
    assert test["micro"]["f1"] >= 0.9, test
    assert {k: v["f1"] >= 0.8 for k, v in test["labels"].items()} == {"LOC": True, "ORG": True, "PER": True}
    assert test["micro"]["support"] > 150
    on_disk = json.loads((trained.path / "metrics.json").read_text())
    assert on_disk["test"] == test and on_disk["evaluated_with"].startswith("tagger.onnx")
    manifest = json.loads((trained.path / "ner.json").read_text())
    assert manifest["storage_ref"] == demo_bundle.manifest.storage_ref
    assert manifest["embeddings_dimension"] == demo_bundle.manifest.dimension
    assert manifest["tags"] == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert sorted(manifest["files"]) == ["metrics.json", "tagger.onnx"]
    assert sorted(p.name for p in trained.path.iterdir()) == ["metrics.json", "ner.json", "tagger.onnx"]


def test_scores_do_not_depend_on_the_batch(trained, demo_bundle):
    from pipelines.model.embed import TokenEmbedder

    embedder = TokenEmbedder(demo_bundle.create_session(intra_op_threads=1), demo_bundle.load_tokenizer())
    sentences = [["Renmi", "Kalo", "said", "so", "."], ["in", "Torva", "."], ["Das", "Wetter", "war", "kalt", "und",
                                                                             "die", "Züge", "kamen", "spät", "."]]
    inputs = [(s, e.vectors) for s, e in zip(sentences, embedder.embed(sentences))]
    model = NerModel.load(trained.path)
    one = model.predict(inputs, batch_size=1)
    together = model.predict(inputs, batch_size=8)
    for a, b in zip(one, together):
        assert a.tags == b.tags
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
        np.testing.assert_allclose(a.scores.sum(axis=1), 1.0, atol=1e-5)


# --- (d) the fused pipeline --------------------------------------------------------------------------
def test_pipeline_with_ner_is_one_python_pass(annotated):
    plan = annotated._jdf.queryExecution().executedPlan().toString()
    assert plan.count("MapInArrow") == 1, plan
    assert annotated.schema["ner"].dataType == spark_type() == annotated.schema["ner_chunk"].dataType
    assert annotated.schema["ner"].metadata == {"annotatorType": "named_entity"}
    assert annotated.schema["ner_chunk"].metadata == {"annotatorType": "chunk"}


def test_every_token_gets_exactly_one_tag_and_chunks_quote_the_text(annotated, trained):
    tags = set(trained.model.tags)
    rows = annotated.collect()
    assert sum(len(r.token) for r in rows) > 1000
    for r in rows:
        text = r.text or ""
        assert [(n.begin, n.end) for n in r.ner] == [(t.begin, t.end) for t in r.token], r.doc_id
        for n, t in zip(r.ner, r.token):
            assert n.annotatorType == "named_entity" and n.result in tags
            assert n.metadata["word"] == t.result and n.metadata["sentence"] == t.metadata["sentence"]
            assert set(n.metadata) == {"word", "sentence", "confidence"}
            assert 0 < float(n.metadata["confidence"]) <= 1 and len(n.metadata["confidence"]) <= 6
        for i, c in enumerate(r.ner_chunk):
            assert c.annotatorType == "chunk" and text[c.begin : c.end + 1] == c.result
            assert c.metadata["chunk"] == str(i) and c.metadata["entity"] in ("PER", "LOC", "ORG")
            assert set(c.metadata) == {"entity", "sentence", "chunk", "confidence"}
    empty = {r.doc_id: (r.ner, r.ner_chunk) for r in rows if r.doc_id in ("null-1", "empty-1")}
    assert empty == {"null-1": ([], []), "empty-1": ([], [])}


def test_entities_found_through_spark_match_the_held_out_gold(annotated, docs):
    gold = {d: g for d, _, g in docs}
    predicted = {r.doc_id: {(c.begin, c.end, c.metadata["entity"]) for c in r.ner_chunk} for r in annotated.collect()}
    all_gold = {(d, *s) for d, spans in gold.items() for s in spans}
    all_pred = {(d, *s) for d, spans in predicted.items() for s in spans}
    assert f1(all_gold, all_pred) >= 0.9
    for lang in ("en", "de", "fr", "es", "ru", "zh"):  # every language, not just the average
        g = {x for x in all_gold if x[0].startswith(lang)}
        assert f1(g, {x for x in all_pred if x[0].startswith(lang)}) >= 0.75, lang


def test_entities_table_rows_are_the_chunks(spark, annotated, docs, demo_bundle, trained):
    df = spark.createDataFrame([(d, t) for d, t, _ in docs], "doc_id string, text string")
    table = df.transform(with_entities(stages(demo_bundle.path, trained.path), ["doc_id"]))
    assert table.columns == ["doc_id", *ENTITY_COLUMNS]
    plan = table._jdf.queryExecution().executedPlan().toString()
    assert plan.count("MapInArrow") == 1
    texts = {d: t for d, t, _ in docs}
    rows = table.collect()
    for r in rows:
        assert texts[r.doc_id][r.begin : r.end + 1] == r.text
    expected = sorted((r.doc_id, int(c.metadata["sentence"]), int(c.metadata["chunk"]), c.begin, c.end, c.result,
                       c.metadata["entity"], float(c.metadata["confidence"]))
                      for r in annotated.collect() for c in r.ner_chunk)
    got = sorted((r.doc_id, r.sentence, r.chunk_index, r.begin, r.end, r.text, r.entity, r.confidence) for r in rows)
    assert [g[:7] for g in got] == [e[:7] for e in expected]
    np.testing.assert_allclose([g[7] for g in got], [e[7] for e in expected], atol=1e-6)


def test_all_confidence_scores_and_batch_size_one(spark, annotated, docs, demo_bundle, trained):
    df = spark.createDataFrame([(d, t) for d, t, _ in docs[:6]], "doc_id string, text string")
    out = Pipeline(stages=stages(demo_bundle.path, trained.path, batchSize=1, includeAllConfidenceScores=True)
                   ).fit(df).transform(df)
    base = {r.doc_id: r.ner for r in annotated.collect()}
    tags = trained.model.tags
    for r in out.collect():
        assert [n.result for n in r.ner] == [n.result for n in base[r.doc_id]]
        for n in r.ner:
            scores = {t: float(n.metadata[t]) for t in tags}
            assert set(n.metadata) == {"word", "sentence", "confidence", *tags}
            assert abs(sum(scores.values()) - 1) < 2e-3 and max(scores.values()) == float(n.metadata["confidence"])


def test_pipeline_model_with_ner_saves_and_loads(spark, annotated, docs, demo_bundle, trained, tmp_path):
    df = spark.createDataFrame([(d, t) for d, t, _ in docs[:4]], "doc_id string, text string")
    model = Pipeline(stages=stages(demo_bundle.path, trained.path)).fit(df)
    model.write().overwrite().save(str(tmp_path / "p"))
    loaded = PipelineModel.load(str(tmp_path / "p"))
    assert [type(s).__name__ for s in loaded.stages][-2:] == ["NerDLModel", "NerConverter"]
    assert loaded.stages[-2].getStorageRef() == demo_bundle.manifest.storage_ref
    assert_df_equality(loaded.transform(df).select("doc_id", "ner", "ner_chunk").orderBy("doc_id"),
                       model.transform(df).select("doc_id", "ner", "ner_chunk").orderBy("doc_id"), ignore_metadata=True)


# --- (c) the storage ref ---------------------------------------------------------------------------
def test_embeddings_of_another_model_are_refused(spark, annotated, trained, demo_bundle):
    ref = demo_bundle.manifest.storage_ref
    other = annotated.select("doc_id", "sentence", "token", F.col("embeddings").alias(
        "embeddings", metadata={"annotatorType": "word_embeddings", "dimension": 128, "ref": "bert_other_1234"}))
    with pytest.raises(ValueError, match=rf"NER model .* was trained on embeddings '{ref}', but column 'embeddings' "
                                         r"holds embeddings 'bert_other_1234'.*Use BertEmbeddings with the model "
                                         rf"bundle whose storage ref is '{ref}', or retrain"):
        NerDLModel.loadSavedModel(str(trained.path)).transform(other)
    # (an empty metadata dict would keep the old metadata in PySpark 3.5: give one without a ref)
    unlabeled = annotated.select("doc_id", "sentence", "token", F.col("embeddings").alias(
        "embeddings", metadata={"annotatorType": "word_embeddings"}))
    with pytest.raises(ValueError, match="column 'embeddings' carries no storage ref"):
        NerDLModel.loadSavedModel(str(trained.path)).transform(unlabeled)
    # the same embeddings with their own metadata pass
    same = annotated.select("doc_id", "sentence", "token", "embeddings")
    assert NerDLModel.loadSavedModel(str(trained.path)).transform(same).count() == annotated.count()


def test_ner_model_of_another_embeddings_model_is_refused_in_the_fused_pass(spark, trained, demo_bundle, tmp_path):
    moved = tmp_path / "other-ner"
    shutil.copytree(trained.path, moved)
    manifest = json.loads((moved / "ner.json").read_text())
    manifest["storage_ref"] = "bert_base_multilingual_cased"
    (moved / "ner.json").write_text(json.dumps(manifest))
    df = spark.createDataFrame([("a", "Renmi Kalo said so.")], "doc_id string, text string")
    with pytest.raises(ValueError, match=r"trained on embeddings 'bert_base_multilingual_cased', but column "
                                         rf"'embeddings' holds embeddings '{demo_bundle.manifest.storage_ref}'"):
        Pipeline(stages=stages(demo_bundle.path, moved)).fit(df).transform(df)
    with pytest.raises(ValueError, match="trained on embeddings 'bert_base_multilingual_cased'"):
        df.transform(with_entities(stages(demo_bundle.path, moved), ["doc_id"]))


# --- the model directory ------------------------------------------------------------------------------
def test_ner_directory_is_hash_checked_and_holds_no_pickles(trained, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(trained.path, bad)
    with open(bad / "tagger.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(NerModelError, match="tagger.onnx in NER model .* does not match its sha256"):
        NerModel.load(bad)
    shutil.copytree(trained.path, tmp_path / "pickled")
    (tmp_path / "pickled" / "model.pkl").write_bytes(b"\x80\x04N.")
    with pytest.raises(NerModelError, match="contains 'model.pkl', which is not an NER model file"):
        NerModel.load(tmp_path / "pickled")
    with pytest.raises(NerModelError, match="does not exist: retrain it with `corpus-nlp train-ner"):
        NerModel.load(tmp_path / "missing")


# --- the command line -------------------------------------------------------------------------------
def test_cli_trains_from_config_and_reports_errors_plainly(data, demo_bundle, tmp_path):
    config = tmp_path / "train_ner.yaml"
    config.write_text("dev: null\ntraining:\n  epochs: 2\n")
    runner = CliRunner()
    out = tmp_path / "cli-ner"
    result = runner.invoke(main, ["train-ner", "--config", str(config), "--train", str(data["train"]),
                                  "--model", str(demo_bundle.path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "epoch   2/2" in result.output and "dev entity F1" in result.output
    assert NerModel.load(out).storage_ref == demo_bundle.manifest.storage_ref

    config.write_text("training:\n  epoch: 2\n")
    result = runner.invoke(main, ["train-ner", "--config", str(config)])
    assert result.exit_code == 2
    assert "unknown key 'training.epoch' (did you mean 'epochs'?)" in result.output

    broken = tmp_path / "broken.conll"
    broken.write_text("Renmi B-PER\nsaid\n")
    config.write_text("dev: null\n")
    result = runner.invoke(main, ["train-ner", "--config", str(config), "--train", str(broken),
                                  "--model", str(demo_bundle.path), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and f"Error: {broken}:2: malformed line 'said'" in result.output


def test_job_pass_in_small_units_finds_the_same_chunks_as_the_fused_stages(annotated, docs, demo_bundle, trained):
    import pyarrow as pa

    from pipelines.annotate.tables import stream_token_table

    rb = pa.RecordBatch.from_pydict({"doc_id": [d for d, _, _ in docs], "text": [t for _, t, _ in docs]})
    steps = [s._step() for s in stages(demo_bundle.path, trained.path)]
    out = pa.Table.from_batches(list(stream_token_table(iter([rb]), steps[:3], steps[3:], ["doc_id"], max_tokens=16)))
    got = sorted((d, s, c["chunk_index"], c["begin"], c["end"], c["text"], c["entity"])
                 for d, s, c in zip(*(out.column(n).to_pylist() for n in ("doc_id", "sentence", "chunk"))) if c)
    expected = sorted((r.doc_id, int(c.metadata["sentence"]), int(c.metadata["chunk"]), c.begin, c.end, c.result,
                       c.metadata["entity"]) for r in annotated.collect() for c in r.ner_chunk)
    assert got == expected and len(got) > 100


# --- the job: tags and entities in the lake from the same pass as the embeddings ----------------------
def _job(tmp_path, docs, bundle, ner_dir, **extra):
    corpus = write_corpus(tmp_path / "corpus", {"xx": [(d, t) for d, t, _ in docs]})
    return job_config(tmp_path / "lake", corpus, bundle, ner__model=str(ner_dir), **extra)


def test_job_writes_entities_that_match_the_original_text_and_the_stages(spark, tmp_path, docs, demo_bundle,
                                                                          trained, annotated):
    result = run_annotate(_job(tmp_path, docs, demo_bundle.path, trained.path), spark=spark)
    texts = {d: t for d, t, _ in docs}
    entities = read_table(spark, result.tables["entities"])
    assert entities.columns == ["doc_id", "sentence", "chunk_index", "begin", "end", "text", "entity", "confidence",
                                "run_id", "lang"]
    rows = entities.collect()
    assert len(rows) == result.manifest["counts"]["entities"] > 0
    for r in rows:
        assert texts[r.doc_id][r.begin : r.end + 1] == r.text
    expected = sorted((r.doc_id, i, c.begin, c.end, c.result, c.metadata["entity"])
                      for r in annotated.collect() for i, c in enumerate(r.ner_chunk))
    assert sorted((r.doc_id, r.chunk_index, r.begin, r.end, r.text, r.entity) for r in rows) == expected
    tokens = read_table(spark, result.tables["token_embeddings"])
    assert tokens.where("ner is null").count() == 0
    assert result.manifest["ner"]["storage_ref"] == demo_bundle.manifest.storage_ref


def test_job_refuses_a_ner_model_trained_on_other_embeddings(spark, tmp_path, docs, demo_bundle, trained):
    other = tmp_path / "other-ner"
    shutil.copytree(trained.path, other)
    meta = json.loads((other / "ner.json").read_text())
    meta["storage_ref"] = "some_other_bert"
    (other / "ner.json").write_text(json.dumps(meta))
    with pytest.raises((JobError, NerModelError), match="some_other_bert"):
        run_annotate(_job(tmp_path, docs, demo_bundle.path, other), spark=spark)
