"""Shuffle bytes written per SQL execution of a run, from its Spark event log: which writes moved the vectors.

    python -m benchmarks.shuffle_bytes EVENT_LOG

Run the job with ``spark.conf: {spark.eventLog.enabled: "true", spark.eventLog.dir: DIR}`` in its config.
Prints, per SQL execution that shuffled anything, the lake tables its plan names, whether it runs the
model (a MapInArrow node) and the bytes its stages' shuffles wrote (each stage's too); then the total. Independent of the
run manifest's own ``shuffle`` block (it reads what Spark logged), so it measures any version of the job.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

from pipelines.store.lake import LAKE_TABLES

WRITTEN = "internal.metrics.shuffle.write.bytesWritten"


def shuffle_by_execution(lines) -> tuple[dict, dict]:
    """({execution id: [shuffle bytes written by each stage]}, {execution id: physical plan text}); id None:
    outside SQL."""
    stage_execution, written, plans = {}, defaultdict(list), {}
    for line in lines:
        event = json.loads(line)
        kind = event["Event"]
        if kind == "SparkListenerJobStart":
            execution = (event.get("Properties") or {}).get("spark.sql.execution.id")
            for stage in event["Stage IDs"]:
                stage_execution[stage] = execution
        elif kind == "SparkListenerStageCompleted":
            info = event["Stage Info"]
            bytes_ = sum(int(a.get("Value", 0)) for a in info.get("Accumulables", []) if a.get("Name") == WRITTEN)
            written[stage_execution.get(info["Stage ID"])].append(bytes_)
        elif kind.endswith("SparkListenerSQLExecutionStart") or kind.endswith("SparkListenerSQLAdaptiveExecutionUpdate"):
            plans[str(event["executionId"])] = event.get("physicalPlanDescription", "")
    return dict(written), plans


def main(path: str) -> None:
    with open(path, encoding="utf-8") as f:
        written, plans = shuffle_by_execution(f)
    for execution, stages in sorted(written.items(), key=lambda kv: int(kv[0] or -1)):
        if not sum(stages):
            continue
        plan = plans.get(execution, "")
        tables = [t for t in LAKE_TABLES if f"/{t}" in plan]
        model = "model pass" if "MapInArrow" in plan or "MapInPandas" in plan else ""
        each = " + ".join(f"{b:,}" for b in stages if b)
        print(f"execution {execution}: {sum(stages):>14,} bytes ({each})  {','.join(tables)} {model}")
    print(f"total: {sum(map(sum, written.values())):,} bytes")


if __name__ == "__main__":
    main(sys.argv[1])
