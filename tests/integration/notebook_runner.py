"""Run a Databricks source-format notebook (``# Databricks notebook source``) unchanged on a local Spark
session, with a small stand-in for what Databricks puts in a notebook's namespace: ``spark``,
``dbutils`` (widgets, library.restartPython) and ``display``.

Cells are split on ``# COMMAND ----------``. ``# MAGIC %md`` cells are documentation; ``%pip`` cells are
skipped with a note (the test's environment already has the project installed); ``%sql`` cells run
through ``spark.sql``; any other magic is an error, so a notebook cannot silently skip work here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

HEADER = "# Databricks notebook source"
SEPARATOR = "# COMMAND ----------"
MAGIC = "# MAGIC"


class WidgetNotDefined(KeyError):
    """``dbutils.widgets.get`` of a widget no cell defined (Databricks raises InputWidgetNotDefined)."""


class Widgets:
    """Widgets with their defaults; values passed to the run win, as a job's parameters do."""

    def __init__(self, values: dict[str, str]):
        self._values = dict(values)
        self._defaults: dict[str, str] = {}

    def text(self, name: str, defaultValue: str = "", label: str | None = None) -> None:
        self._defaults[name] = defaultValue

    def dropdown(self, name: str, defaultValue: str, choices: list[str], label: str | None = None) -> None:
        if defaultValue not in choices:
            raise ValueError(f"widget {name}: default {defaultValue!r} is not one of {choices}")
        if name in self._values and self._values[name] not in choices:
            raise ValueError(f"widget {name}: {self._values[name]!r} is not one of {choices}")
        self._defaults[name] = defaultValue

    combobox = dropdown

    def get(self, name: str) -> str:
        if name not in self._defaults:
            raise WidgetNotDefined(name)
        return str(self._values.get(name, self._defaults[name]))

    getArgument = get

    def remove(self, name: str) -> None:
        self._defaults.pop(name, None)

    def removeAll(self) -> None:
        self._defaults.clear()


class Library:
    def __init__(self, notes: list[str]):
        self._notes = notes

    def restartPython(self) -> None:
        self._notes.append("dbutils.library.restartPython(): nothing to restart locally")


class DBUtils:
    def __init__(self, widgets: dict[str, str], notes: list[str]):
        self.widgets = Widgets(widgets)
        self.library = Library(notes)


@dataclass
class NotebookRun:
    namespace: dict
    displayed: list = field(default_factory=list)  # what display() got: rows of DataFrames, other values as is
    notes: list[str] = field(default_factory=list)
    cells_run: int = 0


def cells(source: str) -> list[str]:
    if not source.startswith(HEADER):
        raise ValueError(f"not a Databricks source notebook: the first line is not {HEADER!r}")
    return [c.strip("\n") for c in source[len(HEADER):].split(SEPARATOR) if c.strip()]


def magic(cell: str) -> str | None:
    """The cell's magic text (``%md ...``) when every line is a ``# MAGIC`` line, else None."""
    lines = cell.splitlines()
    if not all(line.startswith(MAGIC) for line in lines):
        return None
    return "\n".join(line[len(MAGIC) + 1:] for line in lines)


def run_notebook(path: str | Path, spark, widgets: dict[str, str] | None = None, display_rows: int = 1000) -> NotebookRun:
    """Run every cell in order in one namespace, as Databricks does; the first failing cell raises."""
    run = NotebookRun({})

    def display(obj, *args, **kwargs):
        run.displayed.append(obj.limit(display_rows).collect() if hasattr(obj, "limit") else obj)

    run.namespace.update(spark=spark, dbutils=DBUtils(widgets or {}, run.notes), display=display,
                         __name__="__main__")
    for number, cell in enumerate(cells(Path(path).read_text(encoding="utf-8")), start=1):
        text = magic(cell)
        if text is not None:
            command = text.split(None, 1)[0] if text.strip() else "%md"
            if command == "%md":
                continue
            if command == "%pip":
                run.notes.append(f"cell {number}: skipped {text.strip()!r} (the environment has the project)")
                continue
            if command == "%sql":
                spark.sql(text.strip()[len("%sql"):])
                run.cells_run += 1
                continue
            raise ValueError(f"cell {number}: magic {command} is not supported by this runner")
        exec(compile(cell, f"{path} (cell {number})", "exec"), run.namespace)
        run.cells_run += 1
    return run
