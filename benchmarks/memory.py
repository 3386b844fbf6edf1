"""Peak memory of one worker running the job's mapInArrow body (``stream_token_table``).

Each case runs in a fresh Python process, in-process (no Spark): the worker's whole job is to turn one
Arrow batch into token rows, and this measures exactly that code, with the demo model so the model's
own memory stays small. ``peak_rss_mb`` is the process's maximum resident set; ``baseline_rss_mb``
what it held before the batch was processed (interpreter, libraries, model, the Arrow batch itself,
after a warm-up document), so ``growth_mb`` is what processing the batch added.

    PYTHONPATH=$PWD python benchmarks/memory.py --case 4x250000 --case 16x250000 --case 1x1000000
    # the code of another checkout (say, before a change): its pipelines package first on the path
    PYTHONPATH=/tmp/before python benchmarks/memory.py --case 1x1000000

A case ``NxC`` is one Arrow batch of N documents of C characters each. ``--docs-done K`` stops once K
documents of the batch are done (the whole batch stays in memory): memory reaches its steady state
within a document or two, and the issue's 256 x 1,000,000 case would take hours to finish here.

    PYTHONPATH=$PWD python benchmarks/memory.py --case 256x1000000 --docs-done 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# German and Chinese sentences, abbreviations and numbers; a line break every 20 sentences (the
# segmenter's preferred cuts are paragraph and line breaks).
SENTENCE = "Der Zug nach München fährt um 9.15 Uhr ab, sagte Dr. Weiß. 北京很大！ "
PARAGRAPH = SENTENCE * 20 + "\n"


def document(chars: int) -> str:
    return (PARAGRAPH * (chars // len(PARAGRAPH) + 1))[:chars]


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_case(docs: int, chars: int, bundle: str, max_tokens: int, docs_done: int | None = None) -> dict:
    import pyarrow as pa

    from pipelines.run.assemble import build_stages
    from pipelines.config import parse_config
    from pipelines.annotate.dataframes import split_roles
    from pipelines.annotate.tables import stream_token_table

    text_stages, model_stages = split_roles(build_stages(parse_config({}), bundle, ["doc_id", "text"]))
    text_steps, model_steps = [s._step() for s in text_stages], [s._step() for s in model_stages]
    warm = pa.RecordBatch.from_pydict({"doc_id": ["w"], "text": [document(20_000)]})
    for _ in stream_token_table(iter([warm]), text_steps, model_steps, ["doc_id"], max_tokens):
        pass
    text = document(chars)
    rb = pa.RecordBatch.from_pydict({"doc_id": [str(i) for i in range(docs)], "text": [text] * docs})
    del text
    baseline = _rss_mb()
    started, tokens, seen = time.time(), 0, set()
    for out in stream_token_table(iter([rb]), text_steps, model_steps, ["doc_id"], max_tokens):
        seen.update(out.column("doc_id").to_pylist())
        if docs_done is not None and len(seen) > docs_done:  # the next document has begun: K are done
            break
        tokens += out.num_rows
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    done = min(len(seen), docs_done) if docs_done is not None else docs
    return {"docs": docs, "docs_done": done, "chars_per_doc": chars, "tokens": tokens,
            "seconds": round(time.time() - started, 1),
            "arrow_batch_mb": round(rb.nbytes / 2**20, 1), "baseline_rss_mb": round(baseline),
            "peak_rss_mb": round(peak), "growth_mb": round(peak - baseline)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", required=True, help="NxC: N documents of C characters")
    parser.add_argument("--bundle", help="model bundle (default: the demo model, built in a temp dir)")
    parser.add_argument("--max-tokens", type=int, default=16384, help="max_tokens_per_chunk")
    parser.add_argument("--docs-done", type=int, help="stop once this many documents of the batch are done")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child: run one case
    args = parser.parse_args(argv)
    if args.one:
        docs, chars = (int(x) for x in args.case[0].split("x"))
        print(json.dumps(run_case(docs, chars, args.bundle, args.max_tokens, args.docs_done)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.bundle
        if bundle is None:
            from pipelines.model.demo import build_demo_model

            bundle = str(build_demo_model(Path(tmp) / "demo-bert").path)
        results = []
        for case in args.case:  # one fresh process per case: ru_maxrss is a process's high-water mark
            child = subprocess.run([sys.executable, __file__, "--one", "--case", case, "--bundle", bundle,
                                    "--max-tokens", str(args.max_tokens),
                                    *(["--docs-done", str(args.docs_done)] if args.docs_done else [])],
                                   capture_output=True, text=True)
            if child.returncode:
                print(child.stderr[-3000:], file=sys.stderr)
                results.append({"case": case, "error": (child.stderr.strip().splitlines() or ["?"])[-1]})
            else:
                results.append({"case": case, **json.loads(child.stdout.strip().splitlines()[-1])})
            print(json.dumps(results[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
