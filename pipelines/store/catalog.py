"""The lake's tables in the session's catalog (``output.database``), and catalog tables' locations.

The lake stays where ``output.path`` says; the catalog only gets a name for each Delta table over its
path (``CREATE TABLE ... USING DELTA LOCATION``), so ``spark.table('db.token_embeddings')`` reads the
lake, and a name registered once keeps following every later run's commits.
"""

from __future__ import annotations

import os

from pipelines.config import OutputSettings
from pipelines.errors import JobError
from pipelines.store.remote_files import is_local, local_file


def table_location(spark, name: str) -> str | None:
    """Where a catalog table's files lie (``DESCRIBE TABLE EXTENDED``'s Location); None for a view."""
    rows = spark.sql(f"DESCRIBE TABLE EXTENDED {name}").collect()
    return next((r["data_type"] for r in rows if r["col_name"] == "Location"), None)


def require_database(spark, output: OutputSettings) -> None:
    """Before any work: the database the tables go to exists (the job does not create schemas: on Unity
    Catalog that is an administrator's decision, with its own location and grants)."""
    if output.database and not spark.catalog.databaseExists(output.database):
        raise JobError(f"database {output.database} (output.database) does not exist in this session's catalog: "
                       f"create it (CREATE SCHEMA {output.database}) or set output.database to one that does")


def register_tables(spark, output: OutputSettings, tables: dict[str, str]) -> dict[str, str]:
    """Give each of the lake's tables that holds a commit its catalog name; lake table -> catalog name.
    A name that already points at this lake's table is left alone; one that points elsewhere is an error
    (the job never drops or repoints a table someone else registered)."""
    from pipelines.store.delta_sql import is_delta_table

    if not output.database:
        return {}
    registered = {}
    for table, path in tables.items():
        if not is_delta_table(spark, path):  # no commit yet: no schema to register
            continue
        name, location = output.table_name(table), _absolute(path)
        if spark.catalog.tableExists(name):
            existing = table_location(spark, name)
            if existing is None or _normal(existing) != _normal(location):
                raise JobError(f"table {name} exists over {existing or 'no location (a view)'}, not over this lake's "
                               f"{location}: choose another output.database or output.table_prefix, or drop it")
        else:
            spark.sql(f"CREATE TABLE {name} USING DELTA LOCATION '{_sql_escape(location)}'")
        registered[table] = name
    return registered


def _absolute(path: str) -> str:
    """A table location must be absolute: a local lake's path from the driver's working directory."""
    return os.path.abspath(local_file(path)) if is_local(path) else path


def _normal(location: str) -> str:
    return str(local_file(location)).rstrip("/") if is_local(location) else location.rstrip("/")


def _sql_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")
