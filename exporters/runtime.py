"""Open ONNX / OpenVINO models with pinned threads and precision, and time them.

One harness for every latency figure of the project (LUT entries, end-to-end validation, the
deployment benchmark), so that they are measured the same way.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eftnas_deploy.core.errors import EftnasError

RUNTIMES = ("onnxruntime", "openvino")
# "default" leaves OpenVINO's own choice (bf16 on CPUs with AMX/AVX512-BF16); the effective one is recorded.
PRECISIONS = {"onnxruntime": ("fp32",), "openvino": ("f32", "bf16", "f16", "default")}


@dataclass(frozen=True)
class RuntimeSpec:
    """Where and how a model runs: runtime, thread count and inference precision.

    `ov_properties`: extra OpenVINO CPU properties as (name, value) pairs, e.g.
    (("CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE", "0.5"),) to run sparse INT8 weights through the sparse kernels.
    """

    runtime: str = "onnxruntime"
    threads: int = 1
    precision: str = "fp32"
    ov_properties: tuple[tuple[str, str], ...] = ()

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
        if self.ov_properties and self.runtime != "openvino":
            raise EftnasError(f"ov_properties: OpenVINO properties given for {self.runtime}")

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
    cores = usable_cores()
    return {"cpu": model, "logical_cores": os.cpu_count(), "usable_cores": cores, "machine": platform.machine()}


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity; cgroup quotas aside)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class OversubscriptionWarning(UserWarning):
    """More inference threads than usable cores: latencies (and speedups computed from them) are not the target's."""


def check_threads(threads: int) -> dict[str, Any]:
    """Warn when `threads` exceeds the usable cores; the record to keep beside every latency figure."""
    cores = usable_cores()
    if threads > cores:
        warnings.warn(
            f"threads: {threads} inference threads on {cores} usable core(s); threads time-share the cores, "
            "so latencies and speedups measured this way do not hold on the target",
            OversubscriptionWarning,
            stacklevel=3,
        )
    return {"usable_cores": cores, "threads_oversubscribed": threads > cores}


@dataclass
class BoundModel:
    """A model with its inputs set once: `run()` infers (what is timed), `outputs()` reads the last results.

    `latency_us`, when the runtime measures each inference itself (OpenVINO's `InferRequest.latency`, the
    figure benchmark_app reports), returns the last run's latency; wall-clock timing then keeps it as the
    sample, and the Python call's wall time (bindings overhead included) is recorded beside it.
    """

    run: Callable[[], Any]
    outputs: Callable[[], list[np.ndarray]]
    latency_us: Callable[[], float] | None = None
    timer: str = "perf_counter around the call"


def _bind_callable(model: Callable[[Mapping[str, np.ndarray]], Any], feeds: Mapping[str, np.ndarray]) -> BoundModel:
    last: list[Any] = [[]]

    def run() -> None:
        last[0] = model(feeds)

    return BoundModel(run, lambda: list(last[0]) if isinstance(last[0], (list, tuple)) else [last[0]])


@dataclass
class CompiledModel:
    """A model ready to run: call it with a dict of numpy inputs; it returns the list of outputs.

    `static_shape` is the (batch, seq_len) the model was compiled for (None: dynamic shapes).
    `binder` sets inputs once and returns a `BoundModel` (as benchmark_app times: inference only).
    """

    _run: Callable[[Mapping[str, np.ndarray]], list[np.ndarray]]
    input_names: list[str]
    output_names: list[str]
    spec: RuntimeSpec
    effective_precision: str
    static_shape: tuple[int, int] | None = None
    binder: Callable[[Mapping[str, np.ndarray]], BoundModel] | None = field(default=None, repr=False)

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return self._run(self._inputs(feeds))

    def _inputs(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: v for k, v in feeds.items() if k in self.input_names}

    def bind(self, feeds: Mapping[str, np.ndarray]) -> BoundModel:
        feeds = self._inputs(feeds)
        return self.binder(feeds) if self.binder is not None else _bind_callable(self, feeds)

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": self.spec.runtime,
            "runtime_version": runtime_version(self.spec.runtime),
            "threads": self.spec.threads,
            "usable_cores": usable_cores(),
            "threads_oversubscribed": self.spec.threads > usable_cores(),
            "precision_requested": self.spec.precision,
            "precision": self.effective_precision,
            "shape_mode": "dynamic" if self.static_shape is None else "static",
        }


def bind(model: Callable[[Mapping[str, np.ndarray]], Any], feeds: Mapping[str, np.ndarray]) -> BoundModel:
    """`model` with `feeds` set once (a CompiledModel binds its runtime's tensors; any callable works)."""
    return model.bind(feeds) if isinstance(model, CompiledModel) else _bind_callable(model, feeds)


def _onnx_dim_params(path: str | Path) -> list[list[str | None]]:
    """Per input, the symbolic name of each dimension (None where the dimension is fixed)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    return [
        [d.dim_param or None for d in i.type.tensor_type.shape.dim] for i in graph.input if i.name not in initializers
    ]


def ort_session_options(threads: int) -> Any:
    """The toolkit's ONNX Runtime CPU options: `threads` intra-op threads, sequential, all graph optimizations."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


def load_onnx(path: str | Path, spec: RuntimeSpec, static_shape: Sequence[int] | None = None) -> CompiledModel:
    """An ONNX Runtime CPU session with `spec.threads` intra-op threads, sequential execution.

    `static_shape` (batch, seq_len) fixes the inputs' symbolic dimensions, so the graph is optimized for it.
    """
    import onnxruntime as ort

    check_threads(spec.threads)
    options = ort_session_options(spec.threads)
    if static_shape is not None:
        for dims in _onnx_dim_params(path):
            for name, size in zip(dims, static_shape):
                if name:
                    options.add_free_dimension_override_by_name(name, int(size))
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]

    def run(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return session.run(outputs, dict(feeds))

    def binder(feeds: Mapping[str, np.ndarray]) -> BoundModel:
        binding = session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for name in outputs:
            binding.bind_output(name, "cpu")
        return BoundModel(lambda: session.run_with_iobinding(binding), binding.copy_outputs_to_cpu)

    shape = None if static_shape is None else (int(static_shape[0]), int(static_shape[1]))
    return CompiledModel(run, [i.name for i in session.get_inputs()], outputs, spec, "fp32", shape, binder)


def openvino_config(spec: RuntimeSpec) -> dict[str, str]:
    """benchmark_app's `-hint none -nstreams 1 -nthreads N -infer_precision P` (LATENCY is the CPU default)."""
    config = {
        "INFERENCE_NUM_THREADS": str(spec.threads),
        "NUM_STREAMS": "1",
        "PERFORMANCE_HINT": "LATENCY",
    }
    if spec.precision != "default":
        config["INFERENCE_PRECISION_HINT"] = spec.precision
    return config | dict(spec.ov_properties)


def load_openvino(model: Any, spec: RuntimeSpec, static_shape: Sequence[int] | None = None) -> CompiledModel:
    """Compile an OpenVINO model (IR/ONNX path or ov.Model) on the CPU with pinned threads and precision.

    `static_shape` (batch, seq_len) reshapes every input to it before compiling (what benchmark_app's -shape does).
    """
    import openvino as ov

    check_threads(spec.threads)
    core = ov.Core()
    source = core.read_model(str(model)) if isinstance(model, (str, Path)) else model
    if static_shape is not None:
        shape = [int(static_shape[0]), int(static_shape[1])]
        source.reshape({port.any_name: shape for port in source.inputs})
    compiled = core.compile_model(source, "CPU", openvino_config(spec))
    request = compiled.create_infer_request()
    inputs = [port.any_name for port in compiled.inputs]
    outputs = [port.any_name for port in compiled.outputs]
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    effective = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)

    def run(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        result = request.infer(dict(feeds), share_inputs=True)
        return [np.asarray(result[port]) for port in compiled.outputs]

    def binder(feeds: Mapping[str, np.ndarray]) -> BoundModel:
        bound = compiled.create_infer_request()
        for name, value in feeds.items():
            bound.set_tensor(name, ov.Tensor(np.ascontiguousarray(value)))
        count = len(compiled.outputs)
        return BoundModel(
            bound.infer,
            lambda: [bound.get_output_tensor(i).data for i in range(count)],
            latency_us=lambda: bound.latency * 1e3,  # milliseconds, measured by the runtime around inference
            timer="openvino InferRequest.latency (as benchmark_app)",
        )

    shape = None if static_shape is None else (int(static_shape[0]), int(static_shape[1]))
    return CompiledModel(run, inputs, outputs, spec, effective, shape, binder)


def open_model(path: str | Path, spec: RuntimeSpec, static_shape: Sequence[int] | None = None) -> CompiledModel:
    """Open an ONNX file with ONNX Runtime, or an IR/ONNX file with OpenVINO, as `spec` says.

    `static_shape` (batch, seq_len) compiles the model for that input shape alone.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"model: {path} does not exist")
    load = load_onnx if spec.runtime == "onnxruntime" else load_openvino
    return load(path, spec, static_shape)


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
    timer: str = "perf_counter around the call"
    call_median_us: float | None = None  # wall time of the whole Python call, when the timer is the runtime's

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


WALL_TIMER = "perf_counter around the call"


def summarize(
    samples_us: list[float], warmup: int, timer: str = WALL_TIMER, calls_us: list[float] | None = None
) -> TimingStats:
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
        timer=timer,
        call_median_us=float(statistics.median(calls_us)) if calls_us else None,
    )


CLOCKS = {"wall": time.perf_counter_ns, "cpu": time.process_time_ns}


OutputCheck = Callable[[list[np.ndarray]], None]


def time_model(
    model: Callable[[Mapping[str, np.ndarray]], Any],
    feeds: Mapping[str, np.ndarray],
    warmup: int = 10,
    repeats: int = 50,
    min_time_s: float = 0.0,
    clock: str = "wall",
    check: OutputCheck | None = None,
) -> TimingStats:
    """Warm up, then time `repeats` calls (more if `min_time_s` has not passed); median and spread.

    Inputs are set once and only inference is timed (benchmark_app's inference-only mode). `check`, when
    given, sees every run's outputs (outside the timed interval) and raises on a wrong one.
    `clock="cpu"` times the process's CPU time instead of wall time: on a machine shared with other jobs it
    is the latency a dedicated single-thread target would see (only meaningful for 1-thread runs).
    """
    if clock not in CLOCKS:
        raise EftnasError(f"clock: {clock!r} is not supported (expected one of {sorted(CLOCKS)})")
    now = CLOCKS[clock]
    bound = bind(model, feeds)
    runtime_timer = bound.latency_us if clock == "wall" else None
    for _ in range(warmup):
        bound.run()
        if check is not None:
            check(bound.outputs())
    samples: list[float] = []
    calls: list[float] = []
    start = time.perf_counter()
    while len(samples) < repeats or time.perf_counter() - start < min_time_s:
        t0 = now()
        bound.run()
        calls.append((now() - t0) / 1e3)
        samples.append(runtime_timer() if runtime_timer is not None else calls[-1])
        if check is not None:
            check(bound.outputs())
    if runtime_timer is None:
        return summarize(samples, warmup, "process CPU time" if clock == "cpu" else bound.timer)
    return summarize(samples, warmup, bound.timer, calls)


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
    bound = {name: bind(model, feeds) for name, (model, feeds) in models.items()}
    for runner in bound.values():
        for _ in range(warmup):
            runner.run()
    samples: dict[str, list[float]] = {name: [] for name in models}
    calls: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, runner in bound.items():
            for _ in range(per_round):
                t0 = now()
                runner.run()
                calls[name].append((now() - t0) / 1e3)
                own = runner.latency_us if clock == "wall" else None
                samples[name].append(own() if own is not None else calls[name][-1])
    out = {}
    for name, runner in bound.items():
        runtime_timed = clock == "wall" and runner.latency_us is not None
        timer = runner.timer if clock == "wall" else "process CPU time"
        out[name] = summarize(samples[name], warmup, timer, calls[name] if runtime_timed else None)
    return out
