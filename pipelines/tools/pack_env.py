"""``corpus-nlp pack-env``: the executors' Python environment as one archive, for ``spark-submit --archives``::

    corpus-nlp pack-env --out dist/corpus-nlp-env.tar.gz
    spark-submit --archives dist/corpus-nlp-env.tar.gz#env --conf spark.pyspark.python=./env/bin/python ...

A virtualenv packed by venv-pack: this package's wheel and its base dependencies, at the versions the
environment running this command has (the driver's), so that driver and executors agree. Left out: PySpark
and delta-spark (a Python worker imports the cluster's own PySpark, from ``$SPARK_HOME/python/lib``, and Delta
runs in the JVM), and the extras (torch, transformers: training only). Like every venv, it does not hold the
interpreter: ``bin/python`` links to this machine's Python, which every node needs at the same path and
minor version (or build the archive on a machine like the nodes).

The archive is cached in ``<cache>/envs`` under a key of the wheel's contents and the dependency versions,
so an unchanged package is packed once.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pipelines.cache import cache_dir
from pipelines.errors import CorpusNlpError

PROJECT = "corpus-nlp"
DRIVER_ONLY = {"pyspark", "delta-spark"}  # not needed by the executors' Python workers
VENV_PACK_HINT = "pip install 'corpus-nlp[cluster]' (venv-pack)"


class PackError(CorpusNlpError):
    """The executor environment cannot be built; the message says what failed."""


@dataclass(frozen=True)
class PackedEnv:
    path: Path
    size_bytes: int
    seconds: float
    cached: bool  # reused from an earlier pack of the same wheel and versions


def pack_env(out: Path, wheel: Path | None = None) -> PackedEnv:
    """Write the executors' environment archive to ``out`` (a .tar.gz), from ``wheel`` or one built from
    the source tree this package was imported from."""
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="corpus-nlp-pack-") as tmp:
        wheel = Path(wheel) if wheel else build_wheel(Path(tmp))
        constraints = driver_constraints(executor_requirements(wheel))
        cached = cache_dir() / "envs" / f"corpus-nlp-env-{env_key(wheel, constraints)}.tar.gz"
        hit = cached.is_file()
        if not hit:
            _build(wheel, constraints, Path(tmp), cached)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.resolve() != cached.resolve():
        part = out.with_name(f".{out.name}.part")
        part.unlink(missing_ok=True)
        try:
            os.link(cached, part)  # the cache and dist/ usually share a disk: no copy of ~160 MiB
        except OSError:
            shutil.copyfile(cached, part)
        os.replace(part, out)
    return PackedEnv(out, out.stat().st_size, round(time.time() - started, 1), hit)


def build_wheel(workdir: Path) -> Path:
    """This package's wheel, built from a copy of its source tree (a stale ``build/`` never leaks in)."""
    source = Path(__file__).resolve().parents[2]  # pipelines/tools/ -> the checkout
    if not (source / "pyproject.toml").is_file():
        raise PackError(f"{source} is not a source checkout of {PROJECT}: pass the wheel to pack with --wheel "
                        "corpus_nlp-*.whl")
    copy = workdir / "src"
    copy.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(source / name, copy / name)
    shutil.copytree(source / "pipelines", copy / "pipelines", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", str(workdir / "wheel"),
          str(copy)], "building the wheel")
    return next((workdir / "wheel").glob("*.whl"))


def driver_constraints(requirements: list[str]) -> str:
    """``name==version`` of ``requirements`` and what they require, as this environment has them (local
    builds and the project left out): the executors get the driver's versions, and a package installed
    here for another reason does not change the archive. A name found at two versions (a half-finished
    upgrade leaves two .dist-info) is left to pip, not pinned twice."""
    needed = _closure(requirements)
    versions: dict[str, set[str]] = {}
    for d in importlib.metadata.distributions():
        name = _normal(d.metadata["Name"] or "")
        if name in needed and name != PROJECT and "+" not in d.version:
            versions.setdefault(name, set()).add(d.version)
    return "".join(f"{name}=={v.pop()}\n" for name, v in sorted(versions.items()) if len(v) == 1)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
    return _normal(re.match(r"[A-Za-z0-9_.\-]+", spec).group(0))


def _closure(requirements: list[str]) -> set[str]:
    """The names of ``requirements`` and, as installed here, all they require (extras aside)."""
    todo, seen = [_requirement_name(r) for r in requirements], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += [_requirement_name(r) for r in importlib.metadata.requires(name) or [] if "extra ==" not in r]
        except importlib.metadata.PackageNotFoundError:
            pass  # not installed here: pip resolves it unpinned
    return seen


def executor_requirements(wheel: Path) -> list[str]:
    """The wheel's base requirements (no extras), less those only the driver needs."""
    requirements = []
    for line in _wheel_text(wheel, "METADATA").splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        spec = line.split(":", 1)[1].strip()
        if "extra ==" not in spec and _requirement_name(spec) not in DRIVER_ONLY:
            requirements.append(spec)
    return requirements


def env_key(wheel: Path, constraints: str) -> str:
    """What the archive depends on: the wheel's code (its RECORD of sha256s, less the metadata, which holds
    the README), its requirements, the versions, the Python."""
    code = [line for line in _wheel_text(wheel, "RECORD").splitlines() if ".dist-info/" not in line.split(",")[0]]
    text = "\n".join([*code, *executor_requirements(wheel), constraints, sys.version])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _wheel_text(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as z:
        member = next(n for n in z.namelist() if n.endswith(f".dist-info/{name}"))
        return z.read(member).decode("utf-8")


def _build(wheel: Path, constraints: str, workdir: Path, target: Path) -> None:
    try:
        import venv_pack
    except ImportError:
        raise PackError(f"packing the environment needs venv-pack: {VENV_PACK_HINT}") from None
    env, pins = workdir / "env", workdir / "constraints.txt"
    pins.write_text(constraints)
    _run([sys.executable, "-m", "venv", "--without-pip", str(env)], "creating the virtualenv")
    pip = [sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install", "-q",
           "--disable-pip-version-check"]
    _run([*pip, "--no-deps", str(wheel)], "installing the wheel")
    _run([*pip, "-c", str(pins), *executor_requirements(wheel)], "installing its dependencies")
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.name}.{os.getpid()}.part.tar.gz")
    try:
        venv_pack.pack(prefix=str(env), output=str(part), force=True)
        os.chmod(part, 0o644)  # venv-pack writes 0600; a cluster may read it as another user
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)


def _run(cmd: list[str], what: str) -> None:
    # Without the caller's PYTHONPATH: pip would take a source checkout on it for the installed package.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        cause = [line.strip() for line in lines if "ERROR" in line or "conflict" in line or line.startswith("    ")]
        raise PackError(f"{what} failed: {'; '.join(cause[-6:] or lines[-1:]) or f'exit status {done.returncode}'}")
