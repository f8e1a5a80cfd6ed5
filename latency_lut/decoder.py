"""Measure a generation latency LUT (prefill + per-token decode) of a decoder LLM on OpenVINO or ONNX Runtime.

Every model goes through the deployment path: slice a random-weight `DecoderSuperNetwork`, save it, export
it (OpenVINO: the stateful IR of `export_decoder_openvino`, KV cache as internal state; ONNX Runtime: the ONNX
of `export_decoder_onnx`, KV cache as inputs/outputs), open it with pinned threads and precision, and run it
through a `DecoderRunner`. Prefill is timed as one forward over `prompt_len`
tokens from an empty cache; a decode step as one forward of a single token with about `context_len` tokens in
the cache (the cache after prefill is saved once, restored, and `DECODE_SPAN` consecutive steps are timed).
Both mimic generation, where the inputs' shapes change at every call: OpenVINO re-prepares its kernels for a
new shape, which costs a decode step measurably more than repeating one shape would.

Both exports need the same non-zero KV groups in every built layer, so no exportable model holds MLPs
alone, nor nothing at all (a model whose blocks are all dropped still builds one empty layer, which the export
refuses). Entries therefore come from stack differences, all in models with attention in every layer:

* attention(g0) = (T(S layers of g0 groups) - T(1 layer)) / (S - 1); fixed = T(1 layer) - attention(g0),
  with g0 the widest measured KV-group count;
* attention(g) = (T(S layers of g groups) - fixed) / S for the other counts;
* mlp(w) = (T(S layers of g0 groups + MLP w) - T(S layers of g0 groups)) / S.

The overhead is then fitted (`latency_lut.measure.fit_overhead`, per phase) on calibration sub-networks
measured end to end with the generation loop that validation uses (`time_generation`), so it also absorbs
what the entries' method misses (a decode step's context growing from `prompt_len` to `prompt_len +
new_tokens` around `context_len`, reading the next token from the logits).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from eftnas_deploy.core.decoder_family import DecoderGeometry
from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.supernet.decoder import DecoderSuperNetwork, build_decoder
from eftnas_deploy.supernet.decoder_slicing import save_sliced_decoder, slice_decoder
from exporters.onnx_decoder import export_decoder_onnx
from exporters.openvino_decoder import export_decoder_openvino
from exporters.runtime import (
    CLOCKS,
    RuntimeSpec,
    TimingStats,
    check_threads,
    openvino_config,
    ort_session_options,
    runtime_version,
    summarize,
)
from latency_lut.decoder_table import PHASES, DecoderLatencyTable, PhaseTable, check_exportable, ffn_grid
from latency_lut.measure import TimingSettings, fit_overhead
from latency_lut.table import default_metadata

DECODE_SPAN = 8  # consecutive decode steps timed after each restore of the cache
COMPILED_PROPERTIES = ("INFERENCE_PRECISION_HINT", "KV_CACHE_PRECISION", "DYNAMIC_QUANTIZATION_GROUP_SIZE")


def random_decoder_supernet(geometry: DecoderGeometry, seed: int = 0, **config: Any) -> DecoderSuperNetwork:
    """A random-weight super-network of `geometry` (latency does not depend on the weights)."""
    import torch

    torch.manual_seed(seed)
    fields = {k: v for k, v in geometry.to_dict().items() if k not in ("model_type", "head_dim")}
    if geometry.head_dim != geometry.hidden_size // geometry.num_heads:
        fields["head_dim"] = geometry.head_dim
    return DecoderSuperNetwork(build_decoder(geometry.model_type, **fields, **config).eval())


def stack_subnet(geometry: DecoderGeometry, groups: int, width: int, depth: int) -> SubnetConfig:
    """`depth` built layers of `groups` KV groups and MLP `width`; the other layers dropped whole."""
    if not 1 <= depth <= geometry.num_layers:
        raise EftnasError(f"stack: {depth} layers do not fit a {geometry.num_layers}-layer model")
    rest = [0] * (geometry.num_layers - depth)
    return SubnetConfig(heads=[groups] * depth + rest, ffn=[width] * depth + rest)


@contextmanager
def exported_decoder(
    supernet: DecoderSuperNetwork,
    subnet: SubnetConfig,
    runtime: str = "openvino",
    int8: bool = False,
    keep: Path | None = None,
) -> Iterator[Path]:
    """The deployed model of `subnet` (sliced, saved, exported: stateful IR for OpenVINO, ONNX with past
    key/values for ONNX Runtime), in a temporary directory unless `keep` is given."""
    check_exportable(supernet.geometry, subnet)
    if int8 and runtime != "openvino":
        raise EftnasError(f"int8: INT8 weights are exported for openvino only, got runtime {runtime!r}")
    with tempfile.TemporaryDirectory(prefix="eftnas-decoder-") as tmp:
        root = Path(keep) if keep is not None else Path(tmp)
        sliced = save_sliced_decoder(slice_decoder(supernet, subnet), root / "sliced", overwrite=True)
        if runtime == "openvino":
            yield export_decoder_openvino(sliced, root / "openvino", int8=int8)
        else:
            yield export_decoder_onnx(sliced, root / "onnx")


class DecoderRunner:
    """A deployed decoder with its KV cache: prefill, decode steps, and their timings (runtime-independent).

    Subclasses say how to run one forward (`run`, which updates the cache), empty the cache (`reset`), and
    save and restore it (`snapshot`, `restore`).
    """

    def __init__(self, spec: RuntimeSpec, vocab_size: int, seed: int = 0) -> None:
        check_threads(spec.threads)
        self.spec, self.vocab_size = spec, vocab_size
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        raise NotImplementedError

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """One forward after the cached tokens (the cache grows by the new ones); the logits."""
        raise NotImplementedError

    def snapshot(self) -> Any:
        raise NotImplementedError

    def restore(self, saved: Any) -> None:
        raise NotImplementedError

    def properties(self) -> dict[str, str]:
        """What ran (precisions, as the runtime reports them)."""
        raise NotImplementedError

    def input_feeds(self, ids: np.ndarray, past: int) -> dict[str, np.ndarray]:
        length = ids.shape[1]
        return {
            "input_ids": ids.astype(np.int64),
            "attention_mask": np.ones((1, past + length), dtype=np.int64),
            "position_ids": np.arange(past, past + length, dtype=np.int64)[None],
        }

    def prompt(self, length: int) -> np.ndarray:
        return self.rng.integers(3, self.vocab_size, size=(1, length), dtype=np.int64)

    def forward(self, ids: np.ndarray, past: int) -> np.ndarray:
        """Run `ids` after `past` cached tokens; the last position's logits."""
        return self.run(self.input_feeds(ids, past))[0, -1]

    def prefill(self, ids: np.ndarray) -> np.ndarray:
        self.reset()
        return self.forward(ids, 0)

    def time_prefill(self, length: int, timing: TimingSettings) -> TimingStats:
        """Time to first token: one forward over `length` prompt tokens from an empty cache, each after an untimed
        one-token step (as in generation, the runtime's shapes change from a decode step's to the prompt's)."""
        prompt, token = self.input_feeds(self.prompt(length), 0), self.input_feeds(self.prompt(1), 0)
        now = CLOCKS[timing.clock]

        def once() -> list[float]:
            self.reset()
            self.run(token)
            self.reset()
            t0 = now()
            self.run(prompt)
            return [(now() - t0) / 1e3]

        return _repeat(once, timing)

    def time_decode(self, context: int, timing: TimingSettings, span: int = DECODE_SPAN) -> TimingStats:
        """Decode steps from `context` cached tokens: the cache after prefill is restored, then `span` consecutive
        steps are timed (contexts `context` .. `context + span - 1`; every step's shapes differ, as in generation)."""
        self.prefill(self.prompt(context))
        saved = self.snapshot()
        steps = [self.input_feeds(self.prompt(1), context + k) for k in range(span)]
        now = CLOCKS[timing.clock]

        def once() -> list[float]:
            self.restore(saved)
            times = []
            for feeds in steps:
                t0 = now()
                self.run(feeds)
                times.append((now() - t0) / 1e3)
            return times

        return _repeat(once, timing)

    def time_generation(self, prompt_len: int, new_tokens: int, runs: int, clock: str) -> dict[str, TimingStats]:
        """A greedy generation loop (prefill, then `new_tokens` steps each fed the argmax of the last logits),
        `runs` times after one warm-up run: time to first token per run, and the time of every decode step."""
        if new_tokens < 1 or runs < 1:
            raise EftnasError(f"generation: new_tokens and runs must be >= 1, got {new_tokens}, {runs}")
        now, ids = CLOCKS[clock], self.prompt(prompt_len)
        ttft: list[float] = []
        steps: list[float] = []
        for run in range(runs + 1):
            t0 = now()
            token = int(np.argmax(self.prefill(ids)))
            first = (now() - t0) / 1e3
            times = []
            for step in range(new_tokens):
                t0 = now()
                token = int(np.argmax(self.forward(np.array([[token]]), prompt_len + step)))
                times.append((now() - t0) / 1e3)
            if run:  # the first run warms up
                ttft.append(first)
                steps.extend(times)
        return {"prefill": summarize(ttft, 1, _timer(clock)), "decode": summarize(steps, 1, _timer(clock))}


class OpenVINODecoder(DecoderRunner):
    """A compiled stateful IR (pinned threads and precision): the KV cache is the infer request's state."""

    def __init__(self, xml: str | Path, spec: RuntimeSpec, vocab_size: int, seed: int = 0) -> None:
        import openvino as ov

        super().__init__(spec, vocab_size, seed)
        self.compiled = ov.Core().compile_model(str(xml), "CPU", openvino_config(spec))
        self.request = self.compiled.create_infer_request()
        self._logits = self.compiled.outputs[0]

    def properties(self) -> dict[str, str]:
        """Effective inference precision, KV-cache precision, dynamic quantization group size."""
        out = {}
        for name in COMPILED_PROPERTIES:
            try:
                value = self.compiled.get_property(name)
            except RuntimeError:
                continue
            out[name.lower()] = value.get_type_name() if hasattr(value, "get_type_name") else str(value)
        return out

    def input_feeds(self, ids: np.ndarray, past: int) -> dict[str, np.ndarray]:
        return {**super().input_feeds(ids, past), "beam_idx": np.zeros(1, dtype=np.int32)}

    def reset(self) -> None:
        self.request.reset_state()

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.request.infer(feeds, share_inputs=True, share_outputs=True)[self._logits]

    def snapshot(self) -> list[np.ndarray]:
        return [np.array(state.state.data, copy=True) for state in self.request.query_state()]

    def restore(self, saved: list[np.ndarray]) -> None:
        import openvino as ov

        for state, value in zip(self.request.query_state(), saved):
            state.state = ov.Tensor(value)


class OnnxDecoder(DecoderRunner):
    """An ONNX Runtime CPU session (pinned threads, sequential, all graph optimizations) whose KV cache goes in
    as `past_key_values.*` and comes back as `present.*`."""

    def __init__(self, path: str | Path, spec: RuntimeSpec, vocab_size: int, seed: int = 0) -> None:
        import onnxruntime as ort

        super().__init__(spec, vocab_size, seed)
        options = ort_session_options(spec.threads)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.past = {n.replace("present", "past_key_values", 1): k for k, n in enumerate(self.outputs) if k}
        for name in self.past:
            shape = self.inputs[name].shape
            if not (isinstance(shape[1], int) and isinstance(shape[3], int)):
                raise EftnasError(f"model: {path} input {name} has no fixed KV-group/head size ({shape})")
        self.cache: dict[str, np.ndarray] = {}

    def properties(self) -> dict[str, str]:
        return {"inference_precision_hint": "fp32", "graph_optimization_level": "ORT_ENABLE_ALL"}

    def input_feeds(self, ids: np.ndarray, past: int) -> dict[str, np.ndarray]:
        return {k: v for k, v in super().input_feeds(ids, past).items() if k in self.inputs}

    def reset(self) -> None:
        self.cache = {
            name: np.zeros((1, self.inputs[name].shape[1], 0, self.inputs[name].shape[3]), dtype=np.float32)
            for name in self.past
        }

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        out = self.session.run(self.outputs, {**feeds, **self.cache})
        self.cache = {name: out[k] for name, k in self.past.items()}
        return out[0]

    def snapshot(self) -> dict[str, np.ndarray]:
        return dict(self.cache)  # every run returns new arrays, so the saved ones stay as they are

    def restore(self, saved: dict[str, np.ndarray]) -> None:
        self.cache = dict(saved)


def open_decoder(path: str | Path, spec: RuntimeSpec, vocab_size: int, seed: int = 0) -> DecoderRunner:
    """The runner of an exported decoder for `spec.runtime`."""
    runner = OpenVINODecoder if spec.runtime == "openvino" else OnnxDecoder
    return runner(path, spec, vocab_size, seed)


def _timer(clock: str) -> str:
    return "process CPU time" if clock == "cpu" else "perf_counter around infer"


def _repeat(once: Callable[[], list[float]], timing: TimingSettings) -> TimingStats:
    """Warm up, then collect samples (µs) from `once` until `repeats` and `min_time_s` are reached."""
    for _ in range(timing.warmup):
        once()
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < timing.repeats or time.perf_counter() - start < timing.min_time_s:
        samples.extend(once())
    return summarize(samples, timing.warmup, _timer(timing.clock))


def time_phases(
    decoder: DecoderRunner, prompt_len: int, context_len: int, timing: TimingSettings
) -> dict[str, TimingStats]:
    return {"prefill": decoder.time_prefill(prompt_len, timing), "decode": decoder.time_decode(context_len, timing)}


def sample_decoder_subnets(
    geometry: DecoderGeometry,
    count: int,
    seed: int = 0,
    kv_groups: list[int] | None = None,
    ffn_range: tuple[int, int] | None = None,
    drop_layer: float = 0.2,
    drop_mlp: float = 0.15,
) -> list[SubnetConfig]:
    """Exportable sub-networks: one KV-group count for all built layers, MLP widths per layer in `ffn_range`
    (or dropped), some layers dropped whole (at least one kept)."""
    rng = np.random.default_rng(seed)
    groups = kv_groups or list(range(1, geometry.num_kv_heads + 1))
    low, high = ffn_range or (1, geometry.intermediate_size)
    out = []
    for _ in range(count):
        g = int(rng.choice(groups))
        keep = rng.random(geometry.num_layers) >= drop_layer
        keep[rng.integers(geometry.num_layers)] = True
        widths = np.where(
            rng.random(geometry.num_layers) < drop_mlp, 0, rng.integers(low, high + 1, geometry.num_layers)
        )
        out.append(
            SubnetConfig(heads=[g if k else 0 for k in keep], ffn=[int(w) if k else 0 for k, w in zip(keep, widths)])
        )
    return out


def _stack_jobs(kv_groups: list[int], widths: list[int], stack: int) -> list[tuple[int, int, int]]:
    """(groups, MLP width, depth) of every model the entries need (see the module docstring)."""
    g0 = max(kv_groups)
    jobs = [(g0, 0, 1)] + [(g, 0, stack) for g in sorted(kv_groups)]
    return jobs + [(g0, w, stack) for w in widths]


def _entries(
    results: dict[tuple[int, int, int], TimingStats], kv_groups: list[int], widths: list[int], stack: int
) -> tuple[float, dict[str, dict[int, dict[str, float]]]]:
    """The fixed part and the per-block entries of one phase from its stack timings."""
    g0 = max(kv_groups)
    one, base = results[g0, 0, 1], results[g0, 0, stack]
    attention0 = (base.median_us - one.median_us) / (stack - 1)
    fixed = one.median_us - attention0

    def entry(value: float, stats: TimingStats, spread: float) -> dict[str, float]:
        return {"median_us": max(0.0, value), "spread_us": spread / stack, "stack_median_us": stats.median_us}

    attention = {g0: entry(attention0, base, base.iqr_us + one.iqr_us)}
    for g in kv_groups:
        if g != g0:
            stats = results[g, 0, stack]
            attention[g] = entry((stats.median_us - fixed) / stack, stats, stats.iqr_us + one.iqr_us)
    ffn = {}
    for w in widths:
        stats = results[g0, w, stack]
        ffn[w] = entry((stats.median_us - base.median_us) / stack, stats, stats.iqr_us + base.iqr_us)
    return fixed, {"attention": attention, "ffn": ffn}


def _measure_stacks(
    supernet: DecoderSuperNetwork,
    spec: RuntimeSpec,
    jobs: list[tuple[int, int, int]],
    lengths: tuple[int, int],
    timing: TimingSettings,
    bar: Any,
    seed: int,
) -> tuple[dict[str, dict[tuple[int, int, int], TimingStats]], dict[str, str]]:
    """Per phase, the timing of every (groups, MLP width, depth) stack; and what the runtime ran."""
    results: dict[str, dict[tuple[int, int, int], TimingStats]] = {p: {} for p in PHASES}
    properties: dict[str, str] = {}
    for job in jobs:
        bar.set_postfix_str(f"groups {job[0]} mlp {job[1]} depth {job[2]}")
        with exported_decoder(supernet, stack_subnet(supernet.geometry, *job), spec.runtime) as path:
            decoder = open_decoder(path, spec, supernet.geometry.vocab_size, seed)
            properties = decoder.properties()
            for phase, stats in time_phases(decoder, *lengths, timing).items():
                results[phase][job] = stats
        bar.update()
    return results, properties


def build_decoder_lut(
    supernet: DecoderSuperNetwork,
    spec: RuntimeSpec | None = None,
    prompt_len: int = 128,
    new_tokens: int = 64,
    context_len: int | None = None,
    kv_groups: list[int] | None = None,
    grid: int = 6,
    ffn_widths: list[int] | None = None,
    timing: TimingSettings | None = None,
    calibration_samples: int = 8,
    generation_runs: int = 3,
    seed: int = 0,
    progress: bool = True,
) -> DecoderLatencyTable:
    """Measure prefill and decode entries of `supernet`'s geometry on `spec`'s runtime (default OpenVINO, f32
    requested), then fit each phase's overhead.

    `context_len` (first of the `DECODE_SPAN` timed steps) defaults to centring them on the middle of a
    generation of `new_tokens` after `prompt_len`; `kv_groups` to every count; the MLP widths to `ffn_widths`
    or a `grid` over [intermediate_size / 16, intermediate_size].
    """
    spec = spec or RuntimeSpec("openvino", 1, "f32")
    timing = timing or TimingSettings(warmup=3, repeats=10, min_time_s=0.2, stack=4)
    timing.check(spec)
    geometry = supernet.geometry
    stack = min(timing.stack, geometry.num_layers)
    if stack < 2:
        raise EftnasError(f"stack: the fixed part needs stacks of at least 2 layers, got {stack}")
    if context_len is None:
        context_len = max(1, prompt_len + new_tokens // 2 - DECODE_SPAN // 2)
    if prompt_len < 1 or context_len < 1:
        raise EftnasError(f"lengths: prompt_len and context_len must be >= 1, got {prompt_len}, {context_len}")
    kv_groups = sorted(set(kv_groups or range(1, geometry.num_kv_heads + 1)))
    widths = sorted(set(ffn_widths or ffn_grid(geometry, grid)))
    for g in kv_groups:
        check_exportable(geometry, stack_subnet(geometry, g, max(widths), stack))
    cores = check_threads(spec.threads)
    start = time.perf_counter()
    jobs = _stack_jobs(kv_groups, widths, stack)
    bar = tqdm(total=len(jobs) + calibration_samples, desc="decoder LUT", disable=not progress)
    results, properties = _measure_stacks(supernet, spec, jobs, (prompt_len, context_len), timing, bar, seed)
    phases = {}
    for phase in PHASES:
        fixed, entries = _entries(results[phase], kv_groups, widths, stack)
        phases[phase] = PhaseTable(fixed, entries)
    table = DecoderLatencyTable(
        geometry=geometry,
        runtime=spec.runtime,
        runtime_version=runtime_version(spec.runtime),
        threads=spec.threads,
        precision=properties.get("inference_precision_hint", spec.precision),
        prompt_len=prompt_len,
        context_len=context_len,
        new_tokens=new_tokens,
        phases=phases,
        metadata=default_metadata(
            {
                "precision_requested": spec.precision,
                "compiled": properties,
                **cores,
                "timing": {
                    **timing.__dict__,
                    "stack": stack,
                    "generation_runs": generation_runs,
                    "decode_span": DECODE_SPAN,
                },
                "kv_groups": kv_groups,
                "ffn_widths": widths,
                "fixed_part": "1-layer vs stack difference (a model with no built layer does not export)",
            }
        ),
    )
    if calibration_samples:
        subnets = sample_decoder_subnets(
            geometry, calibration_samples, seed + 7919, kv_groups, (min(widths), max(widths))
        )
        measured: dict[str, list[float]] = {p: [] for p in PHASES}
        for subnet in subnets:
            bar.set_postfix_str("calibration")
            stats = measure_generation(supernet, subnet, spec, prompt_len, new_tokens, generation_runs, timing.clock)
            for phase in PHASES:
                measured[phase].append(stats[phase].median_us)
            bar.update()
        for phase in PHASES:
            phases[phase].overhead = fit_overhead(phases[phase], subnets, measured[phase])
    bar.close()
    table.metadata["build_time_s"] = round(time.perf_counter() - start, 2)
    return table


def measure_generation(
    supernet: DecoderSuperNetwork,
    subnet: SubnetConfig,
    spec: RuntimeSpec,
    prompt_len: int,
    new_tokens: int,
    runs: int,
    clock: str = "wall",
    seed: int = 0,
    int8: bool = False,
) -> dict[str, TimingStats]:
    """Export `subnet` and time a greedy generation loop on it: time to first token and per-token decode."""
    with exported_decoder(supernet, subnet, spec.runtime, int8) as path:
        decoder = open_decoder(path, spec, supernet.geometry.vocab_size, seed)
        return decoder.time_generation(prompt_len, new_tokens, runs, clock)
