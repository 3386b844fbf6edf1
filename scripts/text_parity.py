"""Agreement of the native text stages with the real Spark NLP 5.5.3 annotators, row by row.

    PYTHONPATH=$PWD .venv/bin/python scripts/text_parity.py [--generated 1800] [--show 5]

Runs DocumentAssembler -> SentenceDetector -> Tokenizer with default parameters through both engines
on :func:`pipelines.text.parity.corpus` (needs the Spark NLP jar: ``make jars``) and prints, per stage,
the share of documents whose annotations are identical (result, begin, end, metadata) and the share
of identical annotations, overall and outside the documented deliberate differences.
"""

from __future__ import annotations

import argparse
import os
import sys

COLUMNS = ["document", "sentence", "token"]


def spark_session():
    from pyspark.sql import SparkSession

    from pipelines.spark import session as sessions

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder
    for key, value in sessions.library_conf(["sparknlp"]).items():
        builder = builder.config(key, value)
    return (builder.master("local[2]").appName("text-parity").config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false").config("spark.driver.memory", "2g").getOrCreate())


def sparknlp_rows(df):
    from pyspark.ml import Pipeline
    from sparknlp.annotator import SentenceDetector, Tokenizer
    from sparknlp.base import DocumentAssembler

    pipeline = Pipeline(stages=[
        DocumentAssembler().setInputCol("text").setOutputCol("document"),
        SentenceDetector().setInputCols(["document"]).setOutputCol("sentence"),
        Tokenizer().setInputCols(["sentence"]).setOutputCol("token"),
    ])
    return pipeline.fit(df).transform(df).select("doc_id", "text", *COLUMNS).collect()


def native_rows(df):
    from pipelines.annotate.stages import DocumentAssembler, SentenceDetector, Tokenizer

    out = (df.transform(DocumentAssembler().setInputCol("text").setOutputCol("document").transform)
           .transform(SentenceDetector().setInputCols(["document"]).setOutputCol("sentence").transform)
           .transform(Tokenizer().setInputCols(["sentence"]).setOutputCol("token").transform))
    return out.select("doc_id", "text", *COLUMNS).collect()


def run(spark, docs):
    """(ours, theirs) normalised annotation columns of ``docs`` [(doc_id, text)]."""
    from pipelines.text.parity import normalise

    df = spark.createDataFrame(docs, "doc_id string, text string").repartition(4).cache()
    theirs = normalise([r.asDict(recursive=True) for r in sparknlp_rows(df)], COLUMNS, jvm_offsets=True)
    ours = normalise([r.asDict(recursive=True) for r in native_rows(df)], COLUMNS)
    return ours, theirs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generated", type=int, default=1800)
    parser.add_argument("--show", type=int, default=5, help="differing documents to print per stage")
    args = parser.parse_args(argv)

    from pipelines.text import parity

    docs = parity.corpus(args.generated)
    texts = dict(docs)
    ours, theirs = run(spark_session(), docs)
    print(f"{len(docs)} documents, {len(parity.scripts_in(texts.values()))} scripts")
    for label, skip in (("all documents", lambda d, c: False),
                        ("outside the README's deliberate differences",
                         lambda d, c: parity.deliberate_difference(texts[d], c) is not None)):
        print(f"\n{label}:")
        for column, s in parity.compare(ours, theirs, COLUMNS, skip).items():
            print(f"  {column:9s} documents {s.equal_documents}/{s.documents} = {s.document_rate:.2%}   "
                  f"annotations {s.equal_annotations}/{max(s.annotations_ours, s.annotations_theirs)} = "
                  f"{s.annotation_rate:.2%}")
            for doc_id in s.differing[: args.show]:
                print(f"    {doc_id} {texts[doc_id][:100]!r}")
                a, b = ours[doc_id][column], theirs[doc_id][column]
                print(f"      ours   {[x[:3] for x in a if x not in b][:4]}")
                print(f"      sparknlp {[x[:3] for x in b if x not in a][:4]}")
    cjk = [d for d, t in texts.items() if parity.deliberate_difference(t, "token") == "one token per CJK ideograph"]
    refined = sum(parity.splits_only_at_cjk(ours[d]["token"], theirs[d]["token"], texts[d]) for d in cjk)
    print(f"\ntoken, documents with CJK ideographs: {refined}/{len(cjk)} differ from Spark NLP only by "
          "tokens cut next to an ideograph")
    return 0


if __name__ == "__main__":
    sys.exit(main())
