"""Generation latency LUT of decoder LLMs (#15): prefill and per-token decode entries on OpenVINO, validation.

Timings here are minimal (tiny models, few repeats): the tests check the machinery, never latency figures.
"""

from __future__ import annotations

import math

import pytest

from eftnas_deploy.core.decoder_family import DecoderGeometry
from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.subnet import SubnetConfig
from latency_lut.decoder_table import PHASES, DecoderLatencyTable, PhaseTable, check_exportable
from latency_lut.table import LutMismatchError, Overhead

pytest.importorskip("optimum.intel")

GEOMETRY = DecoderGeometry("llama", 3, 4, 2, 16, 64, 96, 256)
HELD_OUT = [SubnetConfig(heads=[1, 0, 1], ffn=[60, 0, 90]), SubnetConfig(heads=[2, 2, 2], ffn=[96, 0, 50])]


def fake_table(geometry: DecoderGeometry = GEOMETRY) -> DecoderLatencyTable:
    """A hand-written table (no timing) for the pure prediction and serialisation checks."""

    def phase(scale: float) -> PhaseTable:
        entries = {
            "attention": {1: {"median_us": 10.0 * scale}, 2: {"median_us": 15.0 * scale}},
            "ffn": {48: {"median_us": 20.0 * scale}, 96: {"median_us": 30.0 * scale}},
        }
        return PhaseTable(100.0 * scale, entries, Overhead(constant_us=5.0, scale=0.1))

    return DecoderLatencyTable(
        geometry, "openvino", "test", 1, "f32", 8, 10, 4, {"prefill": phase(4), "decode": phase(1)}
    )


def test_predictions_add_built_layers_and_grow_with_width():
    table = fake_table()
    decode = table.phases["decode"]
    subnet = SubnetConfig(heads=[2, 0, 2], ffn=[72, 0, 0])  # layer 1 not built; layer 2 keeps attention only
    assert decode.entries_sum_us(subnet) == pytest.approx(100 + (15 + 25) + 15)
    assert table.predict_ms_per_token(subnet) == pytest.approx(((100 + 55) * 1.1 + 5) / 1e3)
    assert table.predict_ttft_ms(subnet) > table.predict_ms_per_token(subnet)
    small, wide = SubnetConfig(heads=[1] * 3, ffn=[48] * 3), SubnetConfig(heads=[2] * 3, ffn=[96] * 3)
    mid, shallow = SubnetConfig(heads=[2] * 3, ffn=[60] * 3), SubnetConfig(heads=[2, 2, 0], ffn=[96, 96, 0])
    for phase in PHASES:
        assert table.predict_us(small, phase) < table.predict_us(mid, phase) < table.predict_us(wide, phase)
        assert table.predict_us(shallow, phase) < table.predict_us(wide, phase)
    with pytest.raises(LutMismatchError, match="width 30 was not measured"):
        table.predict_us(SubnetConfig(heads=[2] * 3, ffn=[30] * 3), "decode")


def test_non_uniform_attention_and_empty_subnets_are_refused():
    table = fake_table()
    with pytest.raises(EftnasError, match=r"^heads: KV groups per built layer are \[1, 2\]"):
        table.predict_ttft_ms(SubnetConfig(heads=[1, 0, 2], ffn=[48, 0, 48]))
    with pytest.raises(EftnasError, match=r"heads: KV groups per built layer are \[0, 2, 2\]"):  # MLP without attention
        check_exportable(GEOMETRY, SubnetConfig(heads=[0, 2, 2], ffn=[48, 48, 48]))
    with pytest.raises(EftnasError, match="builds no layer"):
        check_exportable(GEOMETRY, SubnetConfig(heads=[0] * 3, ffn=[0] * 3))
    with pytest.raises(EftnasError, match="3 KV groups > 2"):
        check_exportable(GEOMETRY, SubnetConfig(heads=[3] * 3, ffn=[48] * 3))
    assert check_exportable(GEOMETRY, SubnetConfig(heads=[0, 1, 1], ffn=[0, 0, 96])) == 1


def test_table_round_trips_through_json(tmp_path):
    table = fake_table()
    loaded = DecoderLatencyTable.load(table.save(tmp_path / "lut.json"))
    assert loaded.to_dict() == table.to_dict()
    subnet = SubnetConfig(heads=[1, 1, 0], ffn=[50, 96, 0])
    assert loaded.predict_ttft_ms(subnet) == table.predict_ttft_ms(subnet)
    assert DecoderLatencyTable.load(tmp_path / "lut.json", GEOMETRY, runtime="openvino", prompt_len=8) is not None
    with pytest.raises(LutMismatchError, match="threads 1 != 4; prompt_len 8 != 128"):
        DecoderLatencyTable.load(tmp_path / "lut.json", GEOMETRY, threads=4, prompt_len=128)
    with pytest.raises(LutMismatchError, match="geometry"):
        loaded.check(DecoderGeometry("qwen2", 3, 4, 2, 16, 64, 96, 256))
    (tmp_path / "bad.json").write_text('{"kind": "decoder-generation", "format_version": 1}')
    with pytest.raises(EftnasError, match="not a valid decoder LUT"):
        DecoderLatencyTable.load(tmp_path / "bad.json")
    (tmp_path / "encoder.json").write_text('{"format_version": 1}')
    with pytest.raises(EftnasError, match="not a decoder generation LUT"):
        DecoderLatencyTable.load(tmp_path / "encoder.json")


def build_and_validate(kind: str, tmp_path, runtime: str = "openvino"):
    """Build a minimal LUT of a tiny decoder, round-trip it, and validate it on held-out sub-networks."""
    from exporters.runtime import RuntimeSpec
    from latency_lut.decoder import build_decoder_lut, random_decoder_supernet
    from latency_lut.decoder_validate import plot_decoder_validation, validate_decoder_lut
    from latency_lut.measure import TimingSettings

    geometry = DecoderGeometry(kind, **{f: getattr(GEOMETRY, f) for f in GEOMETRY.to_dict() if f != "model_type"})
    supernet = random_decoder_supernet(geometry)
    timing = TimingSettings(warmup=1, repeats=3, min_time_s=0.0, stack=2)
    table = build_decoder_lut(
        supernet,
        RuntimeSpec.default_for(runtime),
        prompt_len=6,
        new_tokens=3,
        ffn_widths=[48, 96],
        timing=timing,
        calibration_samples=2,
        generation_runs=1,
        progress=False,
    )
    assert (table.runtime, table.prompt_len, table.new_tokens) == (runtime, 6, 3)
    assert table.precision == RuntimeSpec.default_for(runtime).precision  # f32 (OpenVINO) / fp32 (ONNX Runtime)
    if runtime == "openvino":
        assert {"kv_cache_precision", "inference_precision_hint"} <= set(table.metadata["compiled"])
    assert table.metadata["usable_cores"] >= 1 and table.metadata["timing"]["clock"] == "wall"
    for phase in table.phases.values():
        assert sorted(phase.entries["attention"]) == [1, 2] and sorted(phase.entries["ffn"]) == [48, 96]
        calibration = phase.overhead.calibration
        assert len(calibration) == 2
        for row in calibration:  # the encoder's fit_overhead summed this phase's own entries
            assert row["entries_us"] == pytest.approx(phase.entries_sum_us(SubnetConfig.from_dict(row["subnet"])))
    table = DecoderLatencyTable.load(table.save(tmp_path / "lut.json"))
    report = validate_decoder_lut(table, supernet, HELD_OUT, progress=False)
    for phase in PHASES:
        assert report[phase]["n"] == 2 and math.isfinite(report[phase]["median_abs_pct"])
        assert all(r["measured_us"] > 0 and r["predicted_us"] > 0 for r in report[phase]["samples"])
    assert plot_decoder_validation(report, tmp_path / "validation.png").stat().st_size > 0
    with pytest.raises(EftnasError, match="heads"):
        validate_decoder_lut(table, supernet, [SubnetConfig(heads=[1, 2, 2], ffn=[96] * 3)], progress=False)


def test_llama_lut_builds_and_validates_end_to_end(tmp_path):
    build_and_validate("llama", tmp_path)


def test_onnxruntime_lut_builds_and_validates_end_to_end(tmp_path):
    build_and_validate("qwen2", tmp_path, "onnxruntime")


@pytest.mark.slow
def test_qwen2_lut_builds_and_validates_end_to_end(tmp_path):
    build_and_validate("qwen2", tmp_path)


@pytest.mark.parametrize("kind", ["llama-bias-tied", "qwen2", "qwen2-sliding"])
def test_onnx_export_generates_like_pytorch(tmp_path, kind):
    """optimum's ONNX export with past key/values, run by ORTModelForCausalLM, gives PyTorch's greedy tokens."""
    import torch

    pytest.importorskip("optimum.onnxruntime")
    from eftnas_deploy.supernet.decoder import DecoderSuperNetwork
    from eftnas_deploy.supernet.decoder_slicing import save_sliced_decoder, slice_decoder
    from exporters.onnx import read_metadata
    from exporters.onnx_decoder import export_decoder_onnx, load_decoder_onnx
    from tests.test_decoder import greedy, tiny_decoder, token_batch

    supernet = DecoderSuperNetwork(tiny_decoder(kind))
    subnet = SubnetConfig(heads=[0, 1, 1], ffn=[0, 0, 60])  # uniform attention; layer 0 removed, an MLP dropped
    supernet.set_subnet(subnet)
    batch = {"input_ids": token_batch(batch=1, seq=10)["input_ids"]}
    batch["attention_mask"] = torch.ones_like(batch["input_ids"])
    ref_tokens = greedy(supernet.model, batch)
    with torch.no_grad():
        ref = supernet(**batch).logits
    sliced = save_sliced_decoder(slice_decoder(supernet, subnet), tmp_path / "dense")
    path = export_decoder_onnx(sliced, tmp_path / "onnx")
    assert read_metadata(path)["kv_groups"] == 1
    model = load_decoder_onnx(tmp_path / "onnx")
    assert model.use_cache
    assert torch.equal(greedy(model, batch), ref_tokens)
    assert (model(**batch).logits - ref).abs().max() <= 1e-4
    refused = save_sliced_decoder(slice_decoder(supernet, SubnetConfig(heads=[1, 2, 1], ffn=[9] * 3)), tmp_path / "p")
    with pytest.raises(EftnasError, match="same non-zero number in every layer"):
        export_decoder_onnx(refused, tmp_path / "refused")
