"""Files at URIs (``hdfs://``, ``s3a://``, ``abfss://``, ...) from the driver: the lake's small files (run
manifests, partition folders), input file statuses, model directories.

One interface, two ways in:

- a classic driver goes through its session's Hadoop FileSystem (py4j), with the cluster's own
  credentials and settings, whatever the scheme;
- a Spark Connect client has no JVM: it goes through ``pyarrow.fs`` (S3, GCS, Azure, HDFS), with this
  Python's own credentials. ``s3a://`` is read as ``s3://``. A scheme pyarrow does not know (``dbfs:/``)
  gets one line naming what works: a path both the client and the server see (``/Volumes/...``).

Plain paths never come here: callers read them with :mod:`pathlib`.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from pipelines.errors import JobError


def is_local(path: str) -> bool:
    return urlparse(path).scheme in ("", "file")


def local_path(path: str) -> Path:
    return Path(urlparse(path).path if path.startswith("file:") else path)


def local_file(uri: str) -> Path:
    """The file behind a URI that Spark lists (``inputFiles()``: percent-encoded, ``file:`` scheme)."""
    from urllib.parse import unquote

    return Path(unquote(urlparse(uri).path)) if "://" in uri or uri.startswith("file:") else Path(uri)


def is_inside(inner: str, outer: str) -> bool:
    """Whether path ``inner`` is ``outer`` or lies under it (same scheme and authority)."""
    a, b = urlparse(inner), urlparse(outer)
    if (a.scheme or "file") != (b.scheme or "file") or a.netloc != b.netloc:
        return False
    pa_, pb = (os.path.abspath(a.path) if is_local(inner) else a.path), \
        (os.path.abspath(b.path) if is_local(outer) else b.path)
    pa_, pb = pa_.rstrip("/") + "/", pb.rstrip("/") + "/"
    return pa_.startswith(pb)


def files(spark, uri: str):
    """The file system behind ``uri`` for this session."""
    from pipelines.spark.session import is_connect

    return ArrowFiles(uri) if is_connect(spark) else HadoopFiles(spark, uri)


class HadoopFiles:
    def __init__(self, spark, uri: str):
        self.spark, self.jvm = spark, spark._jvm
        self.fs = self._path(uri).getFileSystem(spark._jsc.hadoopConfiguration())

    def _path(self, uri: str):
        return self.jvm.org.apache.hadoop.fs.Path(uri)

    def exists(self, uri: str) -> bool:
        return bool(self.fs.exists(self._path(uri)))

    def delete(self, uri: str) -> None:
        self.fs.delete(self._path(uri), True)

    def write(self, uri: str, data: bytes) -> None:
        stream = self.fs.create(self._path(uri), True)
        stream.write(bytearray(data))
        stream.close()

    def names(self, folder: str) -> list[str]:
        return [s.getPath().getName() for s in self.fs.listStatus(self._path(folder))]

    def read(self, uri: str) -> bytes:
        stream = self.fs.open(self._path(uri))
        try:
            return bytes(self.jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
        finally:
            stream.close()

    def status(self, uri: str) -> tuple[int, int]:
        """(size, modification time in ms)."""
        status = self.fs.getFileStatus(self._path(uri))
        return int(status.getLen()), int(status.getModificationTime())

    def copy_to_local(self, uri: str, target: Path) -> None:
        self.fs.copyToLocalFile(False, self._path(uri), self._path(target.as_uri()), True)


class ArrowFiles:
    def __init__(self, uri: str):
        import pyarrow.fs as pafs

        scheme = urlparse(uri).scheme
        try:
            self.fs, _ = pafs.FileSystem.from_uri(_arrow_uri(uri))
        except Exception as e:  # pyarrow: unknown scheme, no credentials, no libhdfs
            raise JobError(f"{uri}: a Spark Connect client reads {scheme}:// paths through pyarrow, which says: "
                           f"{str(e).splitlines()[0]}; use a path that both this client and the Spark Connect "
                           "server see (e.g. /Volumes/...), or a classic driver") from None

    @staticmethod
    def _path(uri: str) -> str:
        import pyarrow.fs as pafs

        return pafs.FileSystem.from_uri(_arrow_uri(uri))[1]

    def exists(self, uri: str) -> bool:
        import pyarrow.fs as pafs

        return self.fs.get_file_info(self._path(uri)).type != pafs.FileType.NotFound

    def delete(self, uri: str) -> None:
        import pyarrow.fs as pafs

        info = self.fs.get_file_info(self._path(uri))
        if info.type == pafs.FileType.Directory:
            self.fs.delete_dir(info.path)
        elif info.type == pafs.FileType.File:
            self.fs.delete_file(info.path)

    def write(self, uri: str, data: bytes) -> None:
        with self.fs.open_output_stream(self._path(uri)) as out:
            out.write(data)

    def names(self, folder: str) -> list[str]:
        import pyarrow.fs as pafs

        return [i.base_name for i in self.fs.get_file_info(pafs.FileSelector(self._path(folder)))]

    def read(self, uri: str) -> bytes:
        with self.fs.open_input_stream(self._path(uri)) as f:
            return f.read()

    def status(self, uri: str) -> tuple[int, int]:
        info = self.fs.get_file_info(self._path(uri))
        return int(info.size or 0), int(info.mtime_ns or 0) // 1_000_000

    def copy_to_local(self, uri: str, target: Path) -> None:
        import pyarrow.fs as pafs

        pafs.copy_files(self._path(uri), str(target), source_filesystem=self.fs,
                        destination_filesystem=pafs.LocalFileSystem())


def _arrow_uri(uri: str) -> str:
    return "s3://" + uri[len("s3a://"):] if uri.startswith("s3a://") else uri
