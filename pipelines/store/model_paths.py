"""Model directories (bundles, NER models) at Hadoop paths, on the driver and on the executors.

A model path with a scheme (``file:``, ``hdfs://``, ``s3a://``, ``abfss://``, ``dbfs:/``, ...) is read through
the Hadoop FileSystem of the running Spark session, with the cluster's own credentials and settings (from a
Spark Connect client, through pyarrow: :mod:`pipelines.store.remote_files`):

- the driver copies the model's manifest (``manifest.json`` or ``ner.json``) and the files it lists into
  ``<cache>/models/fetched/<key>`` (key: sha256 of the manifest, so a changed model is a new directory),
  checks every file's sha256 (``ModelBundle.load`` / ``NerModel.load``) and renames the copy into place;
- on a cluster, the driver ships that checked copy to the executors as a Spark archive
  (``SparkContext.addArchive``; from a Spark Connect client, ``addArtifacts(archive=True)``): Spark fetches
  it once per executor, and the first Python worker of each
  executor checks the sha256s again (under a lock; the other workers of that executor wait for it and
  then trust the result).

The driver ships its copy rather than ``addFile(uri, recursive=True)`` because Spark refuses local
(``file:``) directories on a cluster, and because only the checked copy is then ever used.

A plain path (``models/x``, ``/Volumes/...``, ``/dbfs/...``) is read where it is, on the driver and on each
executor: a local run, or a file system every node mounts at the same path.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import uuid
from pathlib import Path
from typing import Callable, TypeVar
from urllib.parse import urlparse

from pipelines.cache import cache_dir
from pipelines.errors import CorpusNlpError
from pipelines.store.remote_files import files

MANIFESTS = ("manifest.json", "ner.json")  # a model bundle's, an NER model's
SHIPPED = "spark-archive:"  # a step's model path that names an archive Spark shipped to the executors
FETCHED_DIR = ("models", "fetched")

T = TypeVar("T")

_fetched: dict[tuple[str, int], Path] = {}  # (uri, manifest modification time) -> checked local copy
_shipped: set[tuple[str, str]] = set()  # (Spark application, archive) already added


class ModelFetchError(CorpusNlpError):
    """A model at a Hadoop path cannot be read or does not match its manifest; the message says which."""


def is_uri(path: str) -> bool:
    """A path with a scheme (``file:``, ``hdfs://``, ...); one letter is a Windows drive, not a scheme."""
    return len(urlparse(str(path)).scheme) > 1


def _active_session():
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession()


def has_file(path: str, name: str) -> bool:
    """Whether the model directory ``path`` (a plain path or any Hadoop URI) holds ``name``."""
    spark = _active_session() if is_uri(path) else None
    if spark is None:
        return (_plain(path) / name).exists()
    return files(spark, path).exists(_child(path, name))


def local_dir(path: str) -> Path:
    """The local directory to read the model at ``path`` from on the driver: a plain path itself; for a
    URI, a checked copy fetched through the session's Hadoop FileSystem (once per model version)."""
    if not is_uri(path):
        return Path(path)
    spark = _active_session()
    if spark is None:
        if urlparse(path).scheme == "file":
            return _plain(path)  # no session to read through: a file: URI is a local path
        raise ModelFetchError(f"model {path}: reading a model from a Hadoop path needs a Spark session (its "
                              "Hadoop FileSystem): start one first, or copy the model to a local directory")
    return _fetch(spark, path)


def for_executors(path: str, local: Path) -> str:
    """The model path a step carries to the executors: ``local`` (read in place) for a plain path or a
    classic local master; otherwise a URI's checked local copy, shipped as a Spark archive: on a classic
    cluster with ``SparkContext.addArchive``, from a Spark Connect client as a session artifact (its
    server may be another machine, whatever its master)."""
    from pipelines.spark.session import is_connect

    spark = _active_session()
    if not is_uri(path) or spark is None:
        return os.path.abspath(local)  # executors (a Spark Connect server's too) start elsewhere
    connect = is_connect(spark)
    if not connect and spark.sparkContext.master.startswith("local"):
        return str(local)
    archive = _archive(local)
    session = spark.session_id if connect else spark.sparkContext.applicationId
    if (session, str(archive)) not in _shipped:  # Spark warns on (or refuses) a second add of the same path
        if connect:
            spark.addArtifacts(str(archive), archive=True)
        else:
            spark.sparkContext.addArchive(str(archive))
        _shipped.add((session, str(archive)))
    return SHIPPED + archive.name


def load_on_executor(path: str, load: Callable[..., T]) -> T:
    """``load(directory, verify=...)`` the model a step carries. A model read in place was checked by the
    driver (``verify=False``); a shipped one is checked by the first Python worker of the executor."""
    if not path.startswith(SHIPPED):
        return load(path, verify=False)
    from pyspark import SparkFiles

    name = path[len(SHIPPED):]
    directory = Path(SparkFiles.get(name))
    verified = directory.parent / f".{name}.verified"
    with open(directory.parent / f".{name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two workers of one executor: one checks, the other waits
        if not verified.exists():
            model = load(str(directory), verify=True)
            _write_atomically(verified, b"ok\n")
            return model
    return load(str(directory), verify=False)


# --- on the driver ------------------------------------------------------------------------------


def _plain(path: str) -> Path:
    return Path(urlparse(path).path) if urlparse(str(path)).scheme == "file" else Path(path)


def _child(uri: str, name: str) -> str:
    return f"{uri.rstrip('/')}/{name}"


def forget_fetched() -> None:
    """Every run checks its models against their source afresh: the job calls this as it starts (within a
    run, a model whose source files are unchanged is fetched once)."""
    _fetched.clear()


def _fetch(spark, uri: str) -> Path:
    """The checked local copy of the model at ``uri``: fetched and checked once per run (and again within
    a run when a source file changes), then kept under the manifest's hash, or healed there.

    Fetching on every run costs a copy of the model (measured in docs/platforms.md, "On a cluster"),
    and buys what a cache key cannot: a source file changed under an unchanged manifest is refused, and a
    cached copy damaged on disk is replaced by the freshly checked one."""
    try:
        fs = files(spark, uri)
        found = [(m, _child(uri, m)) for m in MANIFESTS]
        found = [(m, p) for m, p in found if fs.exists(p)]
        if found:
            manifest, manifest_path = found[0]
            raw = fs.read(manifest_path)
            names = _listed_files(uri, raw, manifest)
            stamp = (uri, raw, tuple(fs.status(_child(uri, n)) if fs.exists(_child(uri, n)) else None for n in names))
    except CorpusNlpError:  # a scheme a Spark Connect client cannot read, said in one line
        raise
    except Exception as e:  # py4j carries the Hadoop exception; its first line says what
        raise ModelFetchError(f"model {uri} cannot be read ({_first_line(e)}): check the path and the "
                              "cluster's access to it") from None
    if not found:
        raise ModelFetchError(f"model {uri} has no {' or '.join(MANIFESTS)}: point it at a model bundle "
                              "(corpus-nlp prepare-model) or an NER model directory (corpus-nlp train-ner)")
    if stamp in _fetched and _fetched[stamp].is_dir():
        return _fetched[stamp]
    root = cache_dir().joinpath(*FETCHED_DIR)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".fetch-"))
    try:
        (tmp / manifest).write_bytes(raw)
        for name in names:
            _copy(fs, _child(uri, name), tmp / name)
        _check(tmp, manifest, f"model {uri}")  # the source, as fetched now
        target = _install(tmp, root / hashlib.sha256(raw).hexdigest()[:24], manifest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _fetched[stamp] = target
    return target


def _install(checked: Path, target: Path, manifest: str) -> Path:
    """``checked`` (a complete, checked copy) at ``target``. A copy already there is kept when it checks out
    (another process may be reading it), and otherwise moved aside and replaced, its archive with it."""
    if target.is_dir():
        try:
            _check(target, manifest, str(target))
            return target
        except ModelFetchError:  # damaged on this disk since it was cached: the fresh copy heals it
            aside = target.with_name(f".damaged-{uuid.uuid4().hex[:8]}-{target.name}")
            os.rename(target, aside)
            target.with_name(f"{target.name}.tar").unlink(missing_ok=True)
            shutil.rmtree(aside, ignore_errors=True)
    try:
        os.rename(checked, target)  # atomic: a directory under its key is always complete and checked
    except OSError:
        if not target.is_dir():  # another process put the same model there first: use theirs
            raise
    return target


def _copy(fs, src: str, dst: Path) -> None:
    try:
        fs.copy_to_local(src, dst)
    except Exception as e:
        raise ModelFetchError(f"cannot copy {src} ({_first_line(e)})") from None


def _listed_files(uri: str, raw: bytes, manifest: str) -> list[str]:
    try:
        files = json.loads(raw)["files"]
    except (ValueError, KeyError, TypeError):
        raise ModelFetchError(f"{manifest} of model {uri} is not a valid manifest (no `files`): rebuild the "
                              "model") from None
    bad = [n for n in files if not isinstance(n, str) or "/" in n or "\\" in n or n in ("", ".", "..")]
    if bad:
        raise ModelFetchError(f"{manifest} of model {uri} lists invalid file names {bad}: rebuild the model")
    return sorted(files)


def _check(directory: Path, manifest: str, source: str) -> None:
    """Every file of the copy in ``directory`` against the sha256 its manifest lists (the model's own loader
    checks the rest, its allow-list and format, when a stage loads it). A failure names ``source`` (what the
    user can fix), never the copy, which is gone or healed by the time anyone reads the message."""
    from pipelines.model.digest import cached_sha256

    listed = json.loads((directory / manifest).read_bytes())["files"]
    if not isinstance(listed, dict) or not all(isinstance(d, str) for d in listed.values()):
        raise ModelFetchError(f"{source}: its {manifest} lists no sha256 per file: rebuild the model")
    for name, digest in sorted(listed.items()):
        copy = directory / name
        if not copy.is_file():
            raise ModelFetchError(f"{source} is missing {name}, which its {manifest} lists: rebuild the model there")
        if cached_sha256(copy) != digest.lower():
            raise ModelFetchError(f"{source}: {name} does not match the sha256 its {manifest} lists (corrupt or "
                                  "modified): rebuild the model there, or copy it again from a good one")


def _archive(local: Path) -> Path:
    """An uncompressed tar of the checked copy next to it (written once, atomically): what Spark ships."""
    archive = local.parent / f"{local.name}.tar"
    if not archive.is_file():
        fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=f".{archive.name}.")
        try:
            with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w") as tar:
                for file in sorted(p for p in local.iterdir() if p.is_file()):
                    tar.add(file, arcname=file.name)
            os.chmod(tmp, 0o644)
            os.replace(tmp, archive)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return archive


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _first_line(e: Exception) -> str:
    text = str(getattr(e, "java_exception", None) or e)
    return text.strip().splitlines()[0] if text.strip() else type(e).__name__
