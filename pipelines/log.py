"""What a run tells the person (or the log collector) watching it: notes, progress lines, the summary.

``text`` (default): notes and progress on stderr, the summary on stdout, as before. ``json``: one JSON
object per line, with an ``event`` key (``note``, ``progress``, ``summary``, ``dry_run``, ``error``), same
streams. ``quiet``: no notes and no progress lines; results and errors only. Module-level, because the
CLI sets it once per process and the progress thread, the job and the reporter all read it.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Literal

Format = Literal["text", "json"]


@dataclass
class _Settings:
    quiet: bool = False
    format: Format = "text"


SETTINGS = _Settings()


def configure(quiet: bool = False, format: Format = "text") -> None:
    SETTINGS.quiet, SETTINGS.format = quiet, format


def as_json() -> bool:
    return SETTINGS.format == "json"


def emit(event: str, text: str, stream=None, force: bool = False, **fields) -> None:
    """``text`` as it is, or ``{"event": event, **fields}`` as one JSON line (``message``: the text, when
    ``fields`` has none of its own). Notes and progress are dropped under ``quiet`` unless ``force``."""
    if SETTINGS.quiet and not force:
        return
    stream = stream or sys.stderr
    if as_json():
        record = {"event": event, "time": round(time.time(), 3), **(fields or {"message": text})}
        print(json.dumps(record, ensure_ascii=False, default=str), file=stream, flush=True)
    else:
        print(text, file=stream, flush=True)


def note(text: str) -> None:
    """A one-line note about what the run does now (building the demo model, ...)."""
    emit("note", text)


def result(event: str, text: str, **fields) -> None:
    """The outcome (summary, dry-run plan): stdout, never silenced."""
    emit(event, text, stream=sys.stdout, force=True, **fields)
