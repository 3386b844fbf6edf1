"""Incremental runs: which input partitions are already annotated with this exact pipeline.

The state is the lake's own ``_runs/*.json`` manifests, so any machine that sees the lake can resume.
A partition counts as done when a committed run recorded it with the same pipeline fingerprint (model
storage ref, precision and every stage parameter) and the same input signature (its file names), so a
partition whose files were rewritten is annotated again.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass


def fingerprint(config, model_manifest, extra: dict | None = None) -> str:
    what = {
        "storage_ref": model_manifest.storage_ref,
        "precision": model_manifest.precision,
        "stages": config.stages.model_dump(mode="json"),
        "input": {"id_col": config.input.id_col, "text_col": config.input.text_col},
        "policies": config.policies.model_dump(mode="json"),
        **(extra or {}),
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Partition:
    values: tuple[tuple[str, str | None], ...]  # (column, value as text) in partition-column order
    signature: str

    @property
    def spec(self) -> str:
        """'lang=de/year=2024', the way the directories spell it."""
        return "/".join(f"{k}={v}" for k, v in self.values) or "<all>"

    def as_dict(self) -> dict:
        return {"values": dict(self.values), "signature": self.signature}


def input_partitions(files: list[str], root: str, columns: list[str]) -> list[Partition]:
    """The input's partitions with a signature of the files in each."""
    root_key = root.rstrip("/").split("://")[-1]
    by_partition: dict[tuple, list[str]] = defaultdict(list)
    for f in files:
        relative = f.split(root_key, 1)[-1].strip("/")
        segments = dict(seg.split("=", 1) for seg in relative.split("/")[:-1] if "=" in seg)
        key = tuple((c, _unescape(segments.get(c))) for c in columns)
        by_partition[key].append(relative)
    return sorted(
        (Partition(k, hashlib.sha256("\n".join(sorted(v)).encode()).hexdigest()[:16]) for k, v in by_partition.items()),
        key=lambda p: p.spec,
    )


def _unescape(value: str | None) -> str | None:
    if value is None or value == "__HIVE_DEFAULT_PARTITION__":
        return None
    from urllib.parse import unquote

    return unquote(value)


def parse_partition_filters(specs: list[str], columns: list[str]) -> list[dict[str, str]]:
    """['lang=de', 'lang=fr/year=2024'] -> [{'lang': 'de'}, ...]; unknown columns are an error."""
    out = []
    for spec in specs:
        parts = dict(p.split("=", 1) for p in spec.strip("/").split("/") if "=" in p)
        if not parts or any(k not in columns for k in parts):
            raise ValueError(f"--partition {spec!r} does not name the input's partition columns "
                             f"({', '.join(columns) or 'none: the input is not partitioned'}); e.g. "
                             f"--partition '{columns[0] if columns else 'lang'}=de'")
        out.append(parts)
    return out


def select(partitions: list[Partition], filters: list[dict[str, str]]) -> list[Partition]:
    if not filters:
        return partitions
    return [p for p in partitions if any(all(dict(p.values).get(k) == v for k, v in f.items()) for f in filters)]


def done_partitions(manifests: list[dict], pipeline_fingerprint: str) -> set[tuple]:
    """(values, signature) of partitions committed by earlier runs of the same pipeline."""
    done = set()
    for m in manifests:
        if m.get("status") != "committed" or m.get("fingerprint") != pipeline_fingerprint:
            continue
        for p in m.get("input", {}).get("annotated_partitions", []):
            done.add((json.dumps(p["values"], sort_keys=True), p["signature"]))
    return done


def pending(partitions: list[Partition], done: set[tuple]) -> list[Partition]:
    return [p for p in partitions if (json.dumps(dict(p.values), sort_keys=True), p.signature) not in done]
