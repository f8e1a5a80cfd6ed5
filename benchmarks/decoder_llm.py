"""Decoder LLM generation latency on OpenVINO, 1 thread: LUT accuracy, realized speedups, INT8 weights.

A random-weight decoder with the geometry of Qwen2-0.5B (24 layers, hidden 896, 14 query heads over 2 KV
groups, MLP 4864, vocabulary 151936, tied embeddings) generates greedily: a 128-token prompt (time to first
token) then 64 decode steps (median time per token). The benchmark

1. builds the generation LUT (`latency_lut.decoder.build_decoder_lut`, f32 requested) and validates it on
   held-out exportable sub-networks (uniform KV groups, MLP widths per layer, some layers dropped);
2. measures the full model and sub-networks keeping about 50% and 25% of the decoder layers' weights,
   interleaved (rounds alternate between the models, so load drift hits them alike), and reports the
   realized speedup over the ideal one (weights kept, by layer weights and by all matmul weights, LM head
   included);
3. compares INT8 weights (`export_decoder_openvino(int8=True)`, nncf.compress_weights) with f32 on the full model.

`--runtime onnxruntime` measures the same on ONNX Runtime (ONNX with past key/values; no INT8 step).
Writes benchmarks/results/decoder_llm[_quick][_onnxruntime][_cpu].json and .png.

    .venv/bin/python benchmarks/decoder_llm.py [--quick] [--samples 20] [--clock wall|cpu] [--runtime openvino]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from eftnas_deploy.core.decoder_family import DecoderGeometry
from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.io import write_json
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.supernet.decoder import DecoderSuperNetwork
from eftnas_deploy.supernet.decoder_slicing import slice_decoder
from exporters.runtime import RuntimeSpec, cpu_info, summarize
from latency_lut.decoder import (
    DecoderRunner,
    build_decoder_lut,
    exported_decoder,
    open_decoder,
    random_decoder_supernet,
    sample_decoder_subnets,
)
from latency_lut.decoder_table import PHASES, DecoderLatencyTable
from latency_lut.decoder_validate import plot_decoder_validation, validate_decoder_lut
from latency_lut.measure import TimingSettings

RESULTS = Path(__file__).resolve().parent / "results"
QWEN2_05B = DecoderGeometry("qwen2", 24, 14, 2, 64, 896, 4864, 151936)
QUICK = DecoderGeometry("qwen2", 4, 4, 2, 64, 256, 1024, 8192)
SETTINGS = {
    "full": dict(
        geometry=QWEN2_05B, prompt_len=128, new_tokens=64, grid=6, calibration=10, samples=20, rounds=5, runs=3
    ),
    "quick": dict(geometry=QUICK, prompt_len=32, new_tokens=16, grid=3, calibration=6, samples=8, rounds=5, runs=10),
}


def layer_weights(geometry: DecoderGeometry, groups: int, width: int) -> int:
    """Weights of one layer's matrices: Q/K/V/O of `groups` KV groups and the gated MLP of `width` neurons."""
    q = groups * geometry.group_size * geometry.head_dim
    kv = groups * geometry.head_dim
    return geometry.hidden_size * (2 * q + 2 * kv) + 3 * geometry.hidden_size * width


def fraction_subnet(geometry: DecoderGeometry, fraction: float) -> SubnetConfig:
    """Every layer kept with the most KV groups whose MLP width brings the layer to `fraction` of its weights."""
    target = fraction * layer_weights(geometry, geometry.num_kv_heads, geometry.intermediate_size)
    for groups in range(geometry.num_kv_heads, 0, -1):
        width = round((target - layer_weights(geometry, groups, 0)) / (3 * geometry.hidden_size))
        if 1 <= width <= geometry.intermediate_size:
            return SubnetConfig(heads=[groups] * geometry.num_layers, ffn=[width] * geometry.num_layers)
    raise EftnasError(f"fraction: no uniform sub-network keeps {fraction:.0%} of the layer weights")


def weight_counts(supernet: DecoderSuperNetwork, subnet: SubnetConfig) -> dict[str, int]:
    """Parameters of the sliced model: decoder layers, and every matmul weight (layers + LM head)."""
    dense = slice_decoder(supernet, subnet)
    layers = sum(p.numel() for n, p in dense.named_parameters() if ".layers." in n)
    return {"layer_params": layers, "matmul_params": layers + dense.lm_head.weight.numel()}


def interleaved_generation(
    decoders: dict[str, DecoderRunner], prompt_len: int, new_tokens: int, rounds: int, clock: str
) -> dict[str, dict[str, Any]]:
    """Rounds of one generation per model (after one warm-up each); medians of TTFT and per-token time."""
    samples: dict[str, dict[str, list[float]]] = {name: {p: [] for p in PHASES} for name in decoders}
    for decoder in decoders.values():
        decoder.time_generation(prompt_len, new_tokens, 1, clock)
    for _ in range(rounds):
        for name, decoder in decoders.items():
            stats = decoder.time_generation(prompt_len, new_tokens, 1, clock)
            samples[name]["prefill"].append(stats["prefill"].median_us)
            samples[name]["decode"].append(stats["decode"].median_us)
    return {
        name: {p: summarize(values, 1).to_dict() for p, values in phases.items()} for name, phases in samples.items()
    }


def speedups(
    supernet: DecoderSuperNetwork, table: DecoderLatencyTable, spec: RuntimeSpec, cfg: dict[str, Any], clock: str
) -> dict[str, Any]:
    """Full f32 vs 50% / 25% sub-networks (f32) and the full model with INT8 weights, timed interleaved."""
    geometry = supernet.geometry
    subnets = {
        "full": geometry.full_subnet(),
        "50%": fraction_subnet(geometry, 0.5),
        "25%": fraction_subnet(geometry, 0.25),
    }
    with tempfile.TemporaryDirectory(prefix="decoder-bench-") as tmp:
        decoders = {}
        for name, subnet in subnets.items():
            with exported_decoder(supernet, subnet, spec.runtime, keep=Path(tmp) / name) as path:
                decoders[name] = open_decoder(path, spec, geometry.vocab_size)
        if spec.runtime == "openvino":
            with exported_decoder(supernet, subnets["full"], int8=True, keep=Path(tmp) / "int8") as path:
                decoders["full-int8"] = open_decoder(path, spec, geometry.vocab_size)
        measured = interleaved_generation(decoders, cfg["prompt_len"], cfg["new_tokens"], cfg["rounds"], clock)
        compiled = {name: d.properties() for name, d in decoders.items()}
    full_counts = weight_counts(supernet, subnets["full"])
    rows = {}
    for name, subnet in subnets.items():
        counts = weight_counts(supernet, subnet)
        row: dict[str, Any] = {"subnet": subnet.to_dict(), **counts, "measured": measured[name]}
        row["layer_weight_fraction"] = counts["layer_params"] / full_counts["layer_params"]
        ideal_layers = full_counts["layer_params"] / counts["layer_params"]
        ideal_matmul = full_counts["matmul_params"] / counts["matmul_params"]
        for phase in PHASES:
            realized = measured["full"][phase]["median_us"] / measured[name][phase]["median_us"]
            predicted = table.predict_us(subnets["full"], phase) / table.predict_us(subnet, phase)
            row[phase] = {
                "realized_speedup": realized,
                "lut_predicted_speedup": predicted,
                "ideal_speedup_layer_weights": ideal_layers,
                "ideal_speedup_matmul_weights": ideal_matmul,
                "realized_over_ideal_layer_weights": realized / ideal_layers,
                "realized_over_ideal_matmul_weights": realized / ideal_matmul,
            }
        rows[name] = row
    if "full-int8" not in measured:
        return {"subnets": rows, "int8_vs_f32": None, "compiled": compiled}
    int8 = {
        phase: {
            "f32_ms": measured["full"][phase]["median_us"] / 1e3,
            "int8_ms": measured["full-int8"][phase]["median_us"] / 1e3,
            "speedup": measured["full"][phase]["median_us"] / measured["full-int8"][phase]["median_us"],
        }
        for phase in PHASES
    }
    return {"subnets": rows, "int8_vs_f32": int8, "compiled": compiled}


def weight_formats(geometry: DecoderGeometry, cfg: dict[str, Any], threads: int, clock: str) -> dict[str, Any]:
    """The full model's generation with f32, INT8 and INT4 weights (`export_decoder_openvino(weights=...)`, f32
    inference precision), timed interleaved."""
    from eftnas_deploy.supernet.decoder_slicing import save_sliced_decoder
    from exporters.openvino_decoder import export_decoder_openvino

    supernet = random_decoder_supernet(geometry, tie_word_embeddings=True)
    subnet = geometry.full_subnet()
    with tempfile.TemporaryDirectory(prefix="decoder-weights-") as tmp:
        sliced = save_sliced_decoder(slice_decoder(supernet, subnet), Path(tmp) / "sliced")
        decoders: dict[str, DecoderRunner] = {}
        for weights in ("fp32", "int8", "int4"):
            xml = export_decoder_openvino(sliced, Path(tmp) / weights, weights=weights)
            # bf16 inference precision is not timed: compiling this stateful IR with it ended the process with a
            # floating point exception (SIGFPE) on this CPU (OpenVINO 2026.4).
            decoders[weights] = open_decoder(xml, RuntimeSpec("openvino", threads, "f32"), geometry.vocab_size)
        sizes = {w: sum(f.stat().st_size for f in (Path(tmp) / w).iterdir()) / 2**20 for w in ("fp32", "int8", "int4")}
        measured = interleaved_generation(decoders, cfg["prompt_len"], cfg["new_tokens"], cfg["rounds"], clock)
        compiled = {name: d.properties() for name, d in decoders.items()}
    base = measured["fp32"]
    return {
        name: {
            "inference_precision": compiled[name].get("inference_precision_hint"),
            "ir_mb": round(sizes[name], 1),
            **{f"{p}_ms": row[p]["median_us"] / 1e3 for p in PHASES},
            **{f"{p}_speedup_vs_fp32": base[p]["median_us"] / row[p]["median_us"] for p in PHASES},
        }
        for name, row in measured.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small geometry, short prompt (minutes)")
    parser.add_argument("--samples", type=int, help="held-out sub-networks for validation")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runtime", choices=["openvino", "onnxruntime"], default="openvino")
    parser.add_argument("--weights-only", action="store_true", help="only time the full model's weight formats")
    args = parser.parse_args()
    mode = "quick" if args.quick else "full"
    cfg = dict(SETTINGS[mode], **({"samples": args.samples} if args.samples else {}))
    geometry: DecoderGeometry = cfg["geometry"]
    if args.weights_only:
        start = time.perf_counter()
        rows = weight_formats(geometry, cfg, args.threads, args.clock)
        name = f"decoder_llm_weights{'_quick' if args.quick else ''}{'_cpu' if args.clock == 'cpu' else ''}.json"
        settings = {k: cfg[k] for k in ("prompt_len", "new_tokens", "rounds")} | {"clock": args.clock}
        write_json(RESULTS / name, {"mode": mode, "geometry": geometry.to_dict(), "settings": settings,
                                    "machine": cpu_info(), "formats": rows,
                                    "elapsed_s": round(time.perf_counter() - start, 1)})  # fmt: skip
        for key, row in rows.items():
            print(key, {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
        return
    spec = RuntimeSpec.default_for(args.runtime, args.threads)  # f32 on both
    timing = TimingSettings(warmup=3, repeats=10, min_time_s=0.3, stack=4, clock=args.clock)
    start = time.perf_counter()
    supernet = random_decoder_supernet(geometry, tie_word_embeddings=True)
    table = build_decoder_lut(
        supernet,
        spec,
        prompt_len=cfg["prompt_len"],
        new_tokens=cfg["new_tokens"],
        grid=cfg["grid"],
        timing=timing,
        calibration_samples=cfg["calibration"],
        generation_runs=cfg["runs"],
    )
    widths = table.metadata["ffn_widths"]
    held_out = sample_decoder_subnets(geometry, cfg["samples"], seed=12345, ffn_range=(min(widths), max(widths)))
    report = validate_decoder_lut(table, supernet, held_out)
    speed = speedups(supernet, table, spec, cfg, args.clock)
    suffix = "".join(
        part
        for part, on in (
            ("_quick", args.quick),
            ("_onnxruntime", args.runtime == "onnxruntime"),
            ("_cpu", args.clock == "cpu"),
        )
        if on
    )
    RESULTS.mkdir(exist_ok=True)
    png = plot_decoder_validation(
        report, RESULTS / f"decoder_llm{suffix}.png", f"{mode} ({geometry.num_layers} layers)"
    )
    result = {
        "mode": mode,
        "geometry": geometry.to_dict(),
        "settings": {k: v for k, v in cfg.items() if k != "geometry"}
        | {"clock": args.clock, "threads": args.threads, "runtime": args.runtime},
        "machine": cpu_info(),
        "lut": table.to_dict(),
        "validation": report,
        "speedup": speed,
        "elapsed_s": round(time.perf_counter() - start, 1),
        "plot": png.name,
    }
    write_json(RESULTS / f"decoder_llm{suffix}.json", result)
    for phase in PHASES:
        summary = {k: round(v, 3) for k, v in report[phase].items() if isinstance(v, float)}
        print(f"LUT {phase}: {summary}")
    for name, row in speed["subnets"].items():
        ratios = {p: round(row[p]["realized_over_ideal_layer_weights"], 3) for p in PHASES}
        print(f"{name}: layer weights {row['layer_weight_fraction']:.2f}, realized/ideal {ratios}")
    if speed["int8_vs_f32"]:
        print("int8 vs f32:", {p: round(v["speedup"], 3) for p, v in speed["int8_vs_f32"].items()})
    print(f"elapsed {result['elapsed_s']} s; wrote {RESULTS / f'decoder_llm{suffix}.json'}")


if __name__ == "__main__":
    main()
