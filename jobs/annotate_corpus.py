"""spark-submit entry point of the annotate job; same options and result as `corpus-nlp annotate`.

    spark-submit jobs/annotate_corpus.py --config conf/local.yaml [--input DIR] [--output DIR] [--model DIR]
"""

from pipelines.tools.cli import main

if __name__ == "__main__":
    main(["annotate", *__import__("sys").argv[1:]])
