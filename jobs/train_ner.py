"""spark-submit entry point of NER training; same options and result as `corpus-nlp train-ner`.

    spark-submit jobs/train_ner.py --config conf/train_ner.yaml [--train FILE] [--dev FILE] [--model DIR] [--out DIR]

Training runs on the driver (it needs no Spark); the model directory it writes is what NerDLModel loads.
"""

from pipelines.tools.cli import main

if __name__ == "__main__":
    main(["train-ner", *__import__("sys").argv[1:]])
