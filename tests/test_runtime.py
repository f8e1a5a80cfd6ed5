import numpy as np
import pytest
import torch

from eftnas_deploy import EftnasError
from exporters.runtime import RuntimeSpec, cpu_info, make_feeds, open_model, time_model
from tests.conftest import tiny_model


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    model = tiny_model()
    model.config.return_dict = False
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    ids = torch.randint(5, 100, (1, 16))
    torch.onnx.export(
        model,
        (ids, torch.ones_like(ids)),
        str(path),
        input_names=["input_ids", "attention_mask"],
        output_names=["logits"],
        dynamic_axes={"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}},
        opset_version=17,
        dynamo=False,
    )
    model.config.return_dict = True
    return model, path


@pytest.mark.parametrize("spec", [RuntimeSpec("onnxruntime", 1, "fp32"), RuntimeSpec("openvino", 1, "f32")])
def test_runtimes_match_pytorch_and_time(onnx_file, spec):
    model, path = onnx_file
    compiled = open_model(path, spec)
    feeds = make_feeds(compiled.input_names, batch=2, seq_len=12, vocab_size=100)
    with torch.no_grad():
        expected = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits.numpy()
    np.testing.assert_allclose(compiled(feeds)[0], expected, atol=1e-4 if spec.runtime == "onnxruntime" else 1e-3)
    stats = time_model(compiled, feeds, warmup=2, repeats=5)
    assert stats.repeats == 5 and 0 < stats.min_us <= stats.median_us <= stats.p90_us
    info = compiled.describe()
    assert info["threads"] == 1 and info["precision"] in ("fp32", "f32")


def test_bad_specs_name_the_field():
    with pytest.raises(EftnasError, match="runtime: 'tvm'"):
        RuntimeSpec("tvm")
    with pytest.raises(EftnasError, match="precision: 'fp32' is not supported by openvino"):
        RuntimeSpec("openvino", 1, "fp32")
    with pytest.raises(EftnasError, match="threads"):
        RuntimeSpec("onnxruntime", 0)


def test_cpu_info_has_a_model_string():
    info = cpu_info()
    assert info["cpu"] and info["logical_cores"] >= 1


def test_interleaved_timing_gives_every_model_the_same_number_of_runs():
    from exporters.runtime import time_interleaved

    calls = {"a": 0, "b": 0}

    def model(name):
        def run(feeds):
            calls[name] += 1
            return sum(range(2000 if name == "a" else 20000))

        return run

    stats = time_interleaved({n: (model(n), {}) for n in calls}, rounds=4, per_round=2, warmup=1, clock="cpu")
    assert calls == {"a": 9, "b": 9}
    assert stats["a"].repeats == stats["b"].repeats == 8
    assert stats["a"].median_us < stats["b"].median_us
    with pytest.raises(EftnasError, match="clock"):
        time_interleaved({}, clock="sundial")


def test_openvino_properties_reach_the_compile_config_and_are_refused_elsewhere():
    from exporters.runtime import RuntimeSpec, openvino_config

    rate = (("CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE", "0.5"),)
    config = openvino_config(RuntimeSpec("openvino", 1, "f32", rate))
    assert config["CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE"] == "0.5" and config["INFERENCE_PRECISION_HINT"] == "f32"
    with pytest.raises(EftnasError, match="ov_properties: OpenVINO properties given for onnxruntime"):
        RuntimeSpec("onnxruntime", 1, "fp32", rate)
