"""Open ONNX / OpenVINO models with pinned threads and precision, and time them.

One harness for every latency figure of the project (LUT entries, end-to-end validation, the
deployment benchmark), so that they are measured the same way.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eftnas_deploy.errors import EftnasError

RUNTIMES = ("onnxruntime", "openvino")
# "default" leaves OpenVINO's own choice (bf16 on CPUs with AMX/AVX512-BF16); the effective one is recorded.
PRECISIONS = {"onnxruntime": ("fp32",), "openvino": ("f32", "bf16", "f16", "default")}


@dataclass(frozen=True)
class RuntimeSpec:
    """Where and how a model runs: runtime, thread count and inference precision."""

    runtime: str = "onnxruntime"
    threads: int = 1
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise EftnasError(f"runtime: {self.runtime!r} is not supported (expected one of {RUNTIMES})")
        if self.precision not in PRECISIONS[self.runtime]:
            raise EftnasError(
                f"precision: {self.precision!r} is not supported by {self.runtime} "
                f"(expected one of {PRECISIONS[self.runtime]})"
            )
        if not isinstance(self.threads, int) or self.threads < 1:
            raise EftnasError(f"threads: must be a positive integer, got {self.threads!r}")

    @classmethod
    def default_for(cls, runtime: str, threads: int = 1) -> RuntimeSpec:
        return cls(runtime=runtime, threads=threads, precision=PRECISIONS.get(runtime, ("fp32",))[0])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def runtime_version(runtime: str) -> str:
    if runtime == "onnxruntime":
        import onnxruntime

        return onnxruntime.__version__
    import openvino

    return openvino.get_version()


def cpu_info() -> dict[str, Any]:
    """CPU model string and core counts of this machine."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": model, "logical_cores": os.cpu_count(), "usable_cores": affinity, "machine": platform.machine()}


class CompiledModel:
    """A model ready to run: call it with a dict of numpy inputs; it returns the list of outputs."""

    def __init__(
        self,
        run: Callable[[Mapping[str, np.ndarray]], list[np.ndarray]],
        input_names: list[str],
        output_names: list[str],
        spec: RuntimeSpec,
        effective_precision: str,
    ) -> None:
        self._run = run
        self.input_names = input_names
        self.output_names = output_names
        self.spec = spec
        self.effective_precision = effective_precision

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return self._run({k: v for k, v in feeds.items() if k in self.input_names})

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": self.spec.runtime,
            "runtime_version": runtime_version(self.spec.runtime),
            "threads": self.spec.threads,
            "precision_requested": self.spec.precision,
            "precision": self.effective_precision,
        }


def load_onnx(path: str | Path, spec: RuntimeSpec) -> CompiledModel:
    """An ONNX Runtime CPU session with `spec.threads` intra-op threads, sequential execution."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = spec.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]

    def run(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return session.run(outputs, dict(feeds))

    return CompiledModel(run, [i.name for i in session.get_inputs()], outputs, spec, "fp32")


def openvino_config(spec: RuntimeSpec) -> dict[str, str]:
    config = {
        "INFERENCE_NUM_THREADS": str(spec.threads),
        "NUM_STREAMS": "1",
        "PERFORMANCE_HINT": "LATENCY",
    }
    if spec.precision != "default":
        config["INFERENCE_PRECISION_HINT"] = spec.precision
    return config


def load_openvino(model: Any, spec: RuntimeSpec) -> CompiledModel:
    """Compile an OpenVINO model (IR/ONNX path or ov.Model) on the CPU with pinned threads and precision."""
    import openvino as ov

    core = ov.Core()
    source = core.read_model(str(model)) if isinstance(model, (str, Path)) else model
    compiled = core.compile_model(source, "CPU", openvino_config(spec))
    request = compiled.create_infer_request()
    inputs = [port.any_name for port in compiled.inputs]
    outputs = [port.any_name for port in compiled.outputs]
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    effective = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)

    def run(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        result = request.infer(dict(feeds), share_inputs=True)
        return [np.asarray(result[port]) for port in compiled.outputs]

    return CompiledModel(run, inputs, outputs, spec, effective)


def open_model(path: str | Path, spec: RuntimeSpec) -> CompiledModel:
    """Open an ONNX file with ONNX Runtime, or an IR/ONNX file with OpenVINO, as `spec` says."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"model: {path} does not exist")
    return load_onnx(path, spec) if spec.runtime == "onnxruntime" else load_openvino(path, spec)


def make_feeds(
    input_names: list[str], batch: int, seq_len: int, vocab_size: int = 1000, seed: int = 0
) -> dict[str, np.ndarray]:
    """Random token ids with a full attention mask (latency does not depend on the values)."""
    rng = np.random.default_rng(seed)
    feeds = {
        "input_ids": rng.integers(5, vocab_size, size=(batch, seq_len), dtype=np.int64),
        "attention_mask": np.ones((batch, seq_len), dtype=np.int64),
        "token_type_ids": np.zeros((batch, seq_len), dtype=np.int64),
    }
    unknown = [n for n in input_names if n not in feeds]
    if unknown:
        raise EftnasError(f"inputs: cannot make feeds for model inputs {unknown}")
    return {n: feeds[n] for n in input_names}


@dataclass(frozen=True)
class TimingStats:
    """Latency statistics in microseconds over `repeats` timed runs after `warmup` runs."""

    median_us: float
    p10_us: float
    p90_us: float
    mean_us: float
    min_us: float
    iqr_us: float
    repeats: int
    warmup: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(samples_us: list[float], warmup: int) -> TimingStats:
    q = np.percentile(samples_us, [10, 25, 75, 90])
    return TimingStats(
        median_us=float(statistics.median(samples_us)),
        p10_us=float(q[0]),
        p90_us=float(q[3]),
        mean_us=float(statistics.fmean(samples_us)),
        min_us=float(min(samples_us)),
        iqr_us=float(q[2] - q[1]),
        repeats=len(samples_us),
        warmup=warmup,
    )


CLOCKS = {"wall": time.perf_counter_ns, "cpu": time.process_time_ns}


def time_model(
    model: Callable[[Mapping[str, np.ndarray]], Any],
    feeds: Mapping[str, np.ndarray],
    warmup: int = 10,
    repeats: int = 50,
    min_time_s: float = 0.0,
    clock: str = "wall",
) -> TimingStats:
    """Warm up, then time `repeats` calls (more if `min_time_s` has not passed); median and spread.

    `clock="cpu"` times the process's CPU time instead of wall time: on a machine shared with other jobs it
    is the latency a dedicated single-thread target would see (only meaningful for 1-thread runs).
    """
    if clock not in CLOCKS:
        raise EftnasError(f"clock: {clock!r} is not supported (expected one of {sorted(CLOCKS)})")
    now = CLOCKS[clock]
    for _ in range(warmup):
        model(feeds)
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < repeats or time.perf_counter() - start < min_time_s:
        t0 = now()
        model(feeds)
        samples.append((now() - t0) / 1e3)
    return summarize(samples, warmup)


def time_interleaved(
    models: Mapping[str, tuple[Callable[[Mapping[str, np.ndarray]], Any], Mapping[str, np.ndarray]]],
    rounds: int = 10,
    per_round: int = 3,
    warmup: int = 3,
    clock: str = "wall",
) -> dict[str, TimingStats]:
    """Time several models in alternating rounds, so that load drift on a shared machine hits them alike.

    Use it for ratios (speedups): every model gets `rounds * per_round` timed calls spread over the run.
    """
    if clock not in CLOCKS:
        raise EftnasError(f"clock: {clock!r} is not supported (expected one of {sorted(CLOCKS)})")
    now = CLOCKS[clock]
    for model, feeds in models.values():
        for _ in range(warmup):
            model(feeds)
    samples: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, (model, feeds) in models.items():
            for _ in range(per_round):
                t0 = now()
                model(feeds)
                samples[name].append((now() - t0) / 1e3)
    return {name: summarize(values, warmup) for name, values in samples.items()}
