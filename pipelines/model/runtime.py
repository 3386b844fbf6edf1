"""One inference interface over two runtimes: ONNX Runtime (the default) or OpenVINO (the `openvino` extra).

A bundle's graph runs at the precision its weights were built in (fp32, int8 dynamic, int8-static QDQ,
fp16), or, with OpenVINO, an fp32 graph runs in bfloat16 through OpenVINO's inference precision hint on
CPUs that have bf16 arithmetic (AVX-512 BF16, AMX): about twice fp32's speed there at fp32's accuracy.

:class:`ModelSession` is all the embedder and the classifiers see: ``run(feeds) -> first output``. It
also says what actually ran (``runtime``, ``precision``), which a CPU without bf16 can make differ from
what was asked (``fell_back``). Never imports torch.
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from pipelines.errors import CorpusNlpError

Runtime = Literal["onnxruntime", "openvino"]
Compute = Literal["bundle", "bf16"]
OnUnsupported = Literal["fail", "fp32"]
RUNTIMES: tuple[str, ...] = ("onnxruntime", "openvino")

# The x86 flags that decide which precision pays (from /proc/cpuinfo); reported by the benchmark.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")

log = logging.getLogger(__name__)


class RuntimeSettingError(CorpusNlpError):
    """The runtime or precision asked for cannot run here; the message says what to change."""


# ------------------------------------------------------------------------------------------------ CPU
def cpu_flags() -> dict[str, bool]:
    """Which of :data:`CPU_FLAGS` this CPU has (all False where /proc/cpuinfo is unreadable)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    return {f: f in flags for f in CPU_FLAGS}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def openvino_capabilities() -> tuple[str, ...]:
    """OpenVINO's ``OPTIMIZATION_CAPABILITIES`` of the CPU (e.g. FP32, INT8, BF16); () without openvino."""
    try:
        core = _openvino_core()
    except RuntimeSettingError:
        return ()
    return tuple(str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def bf16_supported() -> bool:
    """True when this CPU computes in bf16 natively (what OpenVINO's capabilities say)."""
    return "BF16" in openvino_capabilities()


def cpu_report() -> dict:
    """What the benchmark and the job record about the machine a number came from."""
    return {"model": cpu_model(), "flags": cpu_flags(), "openvino_capabilities": list(openvino_capabilities())}


@lru_cache(maxsize=1)
def _openvino_core():
    try:
        import openvino as ov
    except ImportError as e:
        raise RuntimeSettingError(
            "runtime openvino needs the openvino package, which is not installed: "
            "`pip install 'corpus-nlp[openvino]'` (on every executor), or use runtime: onnxruntime") from e
    return ov.Core()


def check_runtime(runtime: str, precision: str = "bundle", on_unsupported: str = "fail",
                  bundle_precision: str = "fp32") -> str:
    """The precision that will run here, or a one-line :class:`RuntimeSettingError` saying what to change.

    Called on the driver before the job starts (the same check runs again in every worker's session)."""
    if runtime not in RUNTIMES:
        raise RuntimeSettingError(f"runtime {runtime!r} is not supported: use one of {', '.join(RUNTIMES)}")
    if runtime == "openvino":
        _openvino_core()
    if precision == "bundle":
        return bundle_precision
    if precision != "bf16":
        raise RuntimeSettingError(f"precision {precision!r} is not supported: use 'bundle' or 'bf16'")
    if runtime != "openvino":
        raise RuntimeSettingError("precision bf16 needs runtime: openvino (ONNX Runtime has no bf16 CPU kernels)")
    if bundle_precision != "fp32":
        raise RuntimeSettingError(f"precision bf16 computes an fp32 bundle in bfloat16; this bundle is "
                                  f"{bundle_precision}: use an fp32 bundle, or precision: bundle")
    if bf16_supported():
        return "bf16"
    if on_unsupported == "fp32":
        return "fp32"
    raise RuntimeSettingError(
        f"precision bf16: this CPU ({cpu_model()}) has no bf16 arithmetic (AVX-512 BF16 or AMX; OpenVINO offers "
        f"{', '.join(openvino_capabilities())}): use precision: bundle, or unsupported_precision: fp32 to run fp32 "
        "with a warning")


# -------------------------------------------------------------------------------------------- sessions
class ModelSession:
    """A loaded graph: ``run(feeds)`` returns its first output. Feeds missing from the graph are dropped
    (DistilBERT has no token_type_ids)."""

    runtime: str = ""
    precision: str = ""  # what runs: fp32, bf16, int8, int8-static, fp16
    fell_back: bool = False  # asked for bf16, runs fp32 (the CPU lacks bf16)
    output_name: str = ""
    output_dim: int = 0
    input_names: frozenset[str] = frozenset()

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError


class OrtSession(ModelSession):
    runtime = "onnxruntime"

    def __init__(self, session, precision: str = "fp32"):
        self.session = session
        self.precision = precision
        output = session.get_outputs()[0]
        self.output_name, self.output_dim = output.name, output.shape[-1]
        self.input_names = frozenset(i.name for i in session.get_inputs())

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        feeds = {name: value for name, value in feeds.items() if name in self.input_names}
        return self.session.run([self.output_name], feeds)[0]


class OpenVinoSession(ModelSession):
    runtime = "openvino"

    def __init__(self, onnx_path: Path, threads: int | None, precision: str, bundle_precision: str):
        core = _openvino_core()
        config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
                  # Spark runs several workers per machine: threads must not pin themselves to cores
                  "ENABLE_CPU_PINNING": False}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if bundle_precision == "fp32":
            # OpenVINO would pick bf16 by itself on bf16 CPUs: fp32 stays fp32 unless bf16 was asked for
            config["INFERENCE_PRECISION_HINT"] = "bf16" if precision == "bf16" else "f32"
        try:
            model = core.read_model(str(onnx_path))
            self.compiled = core.compile_model(model, "CPU", config)
        except Exception as e:  # OpenVINO raises RuntimeError with a long report
            lines = [line.strip(" -") for line in str(e).strip().splitlines() if line.strip(" -")]
            why = next((line for line in lines if "No conversion rule" in line), lines[-1] if lines else "")
            raise RuntimeSettingError(
                f"OpenVINO cannot compile {onnx_path} ({why[:200]}): use runtime: onnxruntime for this bundle "
                "(--precision int8 bundles use ONNX Runtime-only operators; int8-static ones run on both)") from e
        self.request = self.compiled.create_infer_request()
        self._lock = threading.Lock()  # an infer request serves one call at a time
        self.precision = precision if bundle_precision == "fp32" else bundle_precision
        output = self.compiled.outputs[0]
        self.output_name = output.get_any_name()
        self.output_dim = output.get_partial_shape()[-1].get_length()
        self.input_names = frozenset(i.get_any_name() for i in self.compiled.inputs)

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        feeds = {name: value for name, value in feeds.items() if name in self.input_names}
        with self._lock:
            self.request.infer(feeds)
            return self.request.get_output_tensor(0).data.copy()


def as_model_session(session) -> ModelSession:
    """A :class:`ModelSession` as it is, or a raw ``onnxruntime.InferenceSession`` wrapped."""
    return session if isinstance(session, ModelSession) else OrtSession(session)


def open_session(bundle, *, runtime: str = "onnxruntime", precision: str = "bundle",
                 on_unsupported: str = "fail", threads: int | None = None,
                 providers: list[str] | None = None) -> ModelSession:
    """The bundle's graph on ``runtime`` (see :func:`check_runtime`); a fall-back to fp32 is logged."""
    bundle_precision = bundle.manifest.precision
    runs = check_runtime(runtime, precision, on_unsupported, bundle_precision)
    if runtime == "onnxruntime":
        return OrtSession(bundle.create_session(intra_op_threads=threads, providers=providers), runs)
    session = OpenVinoSession(bundle.onnx_path, threads, runs, bundle_precision)
    if precision == "bf16" and runs != "bf16":
        session.fell_back = True
        log.warning("precision bf16: this CPU (%s) has no bf16 arithmetic; running fp32 (unsupported_precision: "
                    "fp32)", cpu_model())
    return session
