"""sha256 of model files, remembered by file identity so that a job does not re-read 700 MB every run.

Checking a bundle's hashes before any task starts re-reads the 709 MB bert-base-multilingual-cased
model on the driver in every run, while no task runs (1.5 s with hashlib here, 4.7 s with coreutils
sha256sum, more on a cold page cache or a network file system). Like git's index, we remember a
large file's digest under its identity (device, inode, size, mtime and ctime in ns): any write to the
file, a copy over it, a rename of another file onto it or a ``touch`` changes one of them (ctime
cannot be set back from user space), and the file is hashed again.

The cache is a small JSON file in ``pipelines.cache.cache_dir()`` (``~/.cache/corpus-nlp`` by default);
when it cannot be read or written, files are simply hashed every time.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from pipelines.cache import cache_dir

CACHE_FILE = "file-digests.json"
MIN_CACHED_BYTES = 16 * 1024 * 1024  # smaller files hash in milliseconds: not worth an entry


def sha256_file(path: Path | str, chunk: int = 8 * 1024 * 1024) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _identity(st: os.stat_result) -> list[int]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _load(cache: Path) -> dict:
    try:
        entries = json.loads(cache.read_text(encoding="utf-8"))
        return entries if isinstance(entries, dict) else {}
    except (OSError, ValueError):
        return {}


def _store(cache: Path, entries: dict) -> None:
    """Write atomically; entries of files that are gone are dropped. Failures are ignored (no cache)."""
    live = {k: v for k, v in entries.items() if os.path.exists(k)}
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache.parent, prefix=f".{CACHE_FILE}.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(live, f, indent=1, sort_keys=True)
        os.replace(tmp, cache)
    except OSError:
        pass


def cached_sha256(path: Path | str) -> str:
    """The file's sha256, hashed only when this file (by identity) has not been hashed before."""
    key = str(Path(path).resolve())
    before = os.stat(key)
    if before.st_size < MIN_CACHED_BYTES:
        return sha256_file(key)
    cache = cache_dir() / CACHE_FILE
    entries = _load(cache)
    hit = entries.get(key)
    if isinstance(hit, dict) and hit.get("identity") == _identity(before) and isinstance(hit.get("sha256"), str):
        return hit["sha256"]
    digest = sha256_file(key)
    if _identity(os.stat(key)) == _identity(before):  # not remembered if the file changed while we read it
        entries = _load(cache)  # another job may have added entries meanwhile
        entries[key] = {"identity": _identity(before), "sha256": digest}
        _store(cache, entries)
    return digest
