"""`eftnas-deploy export`: sources (subnet, pareto point, sliced dir), bad input and atomic writes."""

import json

import pytest

from eftnas_deploy import SubnetConfig, SuperNetwork
from eftnas_deploy.app.cli import main
from exporters import openvino as ov_export
from tests.conftest import tiny_model


@pytest.fixture(scope="module")
def supernet_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("sn") / "supernet"
    SuperNetwork(tiny_model()).save_pretrained(path)
    return path


def _export(supernet_dir, out, *extra):
    return main(["export", "--supernet", str(supernet_dir), "--out", str(out), *extra])


def test_export_from_pareto_point_then_reexport_from_sliced(supernet_dir, tmp_path, capsys):
    small = {"heads": [1, 0, 2], "ffn": [8, 16, 0]}
    pareto = [{"subnet": {"heads": [4, 4, 4], "ffn": [128, 128, 128]}}, {"subnet": small, "accuracy": 0.5}]
    (tmp_path / "pareto.json").write_text(json.dumps(pareto))
    out = tmp_path / "bundle"
    args = ["--pareto", str(tmp_path / "pareto.json"), "--index", "1", "--formats", "pytorch,onnx"]
    assert _export(supernet_dir, out, *args) == 0
    manifest = json.loads((out / "bundle.json").read_text())
    assert manifest["subnet"] == pareto[1]["subnet"] and sorted(manifest["formats"]) == ["onnx", "pytorch"]
    assert SubnetConfig.load(out / "pytorch" / "subnet.json") == SubnetConfig.from_dict(pareto[1]["subnet"])
    assert not (out / "openvino").exists()
    again = tmp_path / "again"
    assert main(["export", "--sliced", str(out / "pytorch"), "--formats", "onnx", "--out", str(again)]) == 0
    second = json.loads((again / "bundle.json").read_text())
    assert second["source_fingerprint"] == manifest["source_fingerprint"] and sorted(second["formats"]) == ["onnx"]
    assert second["model_fingerprint"] == manifest["model_fingerprint"]
    capsys.readouterr()


@pytest.mark.parametrize(
    ("subnet", "extra", "message"),
    [
        ({"heads": [9, 0, 2], "ffn": [8, 16, 0]}, [], "layer 0: 9 heads requested, model has 4"),
        ({"heads": [1, 1], "ffn": [8, 8]}, [], "heads: 2 layers given, model has 3"),
        ({"heads": [1, 0, 2], "ffn": [8, 16, 0]}, ["--formats", "onnx,tflite"], "unknown format(s) ['tflite']"),
        ({"heads": [1, 0, 2], "ffn": [8, 16, 0]}, ["--formats", "onnx,int8"], "calibration-file: the int8 format"),
    ],
)
def test_bad_input_is_named_and_nothing_is_written(supernet_dir, tmp_path, capsys, subnet, extra, message):
    (tmp_path / "s.json").write_text(json.dumps(subnet))
    out = tmp_path / "bundle"
    assert _export(supernet_dir, out, "--subnet", str(tmp_path / "s.json"), *extra) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_pareto_index_out_of_range(supernet_dir, tmp_path, capsys):
    (tmp_path / "p.json").write_text(json.dumps([{"subnet": {"heads": [1, 1, 1], "ffn": [8, 8, 8]}}]))
    assert _export(supernet_dir, tmp_path / "b", "--pareto", str(tmp_path / "p.json"), "--index", "3") == 2
    assert "index: 3 is out of range" in capsys.readouterr().err


def test_non_empty_out_dir_needs_overwrite(supernet_dir, tmp_path, capsys):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    SubnetConfig([1, 0, 2], [8, 16, 0]).save(tmp_path / "s.json")
    assert _export(supernet_dir, out, "--subnet", str(tmp_path / "s.json"), "--formats", "pytorch") == 2
    assert "not empty" in capsys.readouterr().err and (out / "keep.txt").read_text() == "user data"


def test_failure_midway_leaves_no_half_bundle(supernet_dir, tmp_path, monkeypatch, capsys):
    def broken_export(sliced_dir, out_dir, task, metadata):
        out_dir.mkdir(parents=True)
        (out_dir / "openvino_model.xml").write_text("<half")
        raise RuntimeError("injected failure during the OpenVINO export")

    monkeypatch.setattr(ov_export, "export_openvino", broken_export)
    SubnetConfig([1, 0, 2], [8, 16, 0]).save(tmp_path / "s.json")
    out = tmp_path / "bundle"
    with pytest.raises(RuntimeError, match="injected failure"):
        _export(supernet_dir, out, "--subnet", str(tmp_path / "s.json"), "--formats", "pytorch,onnx,openvino")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]  # neither the bundle nor a temp dir
    capsys.readouterr()


@pytest.mark.integration
def test_int8_through_the_cli_with_task_data(supernet_dir, tmp_path, shared_data, capsys):
    from transformers import AutoTokenizer

    tokenizer_dir = tmp_path / "sn"
    tokenizer = AutoTokenizer.from_pretrained(shared_data / "tokenizers" / "bert-base-uncased")
    SuperNetwork(tiny_model(vocab_size=tokenizer.vocab_size)).save_pretrained(tokenizer_dir)
    tokenizer.save_pretrained(tokenizer_dir)
    SubnetConfig([2, 0, 4], [64, 0, 32]).save(tmp_path / "s.json")
    rte = shared_data / "glue" / "RTE" / "dev.tsv"
    out = tmp_path / "bundle"
    args = ["--subnet", str(tmp_path / "s.json"), "--formats", "int8", "--calibration-file", str(rte)]
    args += ["--text-column", "sentence1", "--text-pair-column", "sentence2", "--calibration-size", "24"]
    args += ["--eval-size", "24", "--max-length", "64"]
    assert _export(tokenizer_dir, out, *args) == 0
    manifest = json.loads((out / "bundle.json").read_text())
    assert sorted(manifest["formats"]) == ["int8"] and not (out / "openvino").exists()
    q = manifest["quantization"]
    assert q["calibration_examples"] == 24 and q["eval_examples"] == 24 and q["accuracy_int8"] is not None
    capsys.readouterr()


@pytest.mark.integration
def test_int8_calibration_reads_a_headerless_task_file(supernet_dir, tmp_path, shared_data, capsys):
    """--task mrpc: the training data layer reads MRPC's headerless TSV; labels take the task's names."""
    from transformers import AutoTokenizer

    tokenizer_dir = tmp_path / "sn"
    tokenizer = AutoTokenizer.from_pretrained(shared_data / "tokenizers" / "bert-base-uncased")
    SuperNetwork(tiny_model(vocab_size=tokenizer.vocab_size)).save_pretrained(tokenizer_dir)
    tokenizer.save_pretrained(tokenizer_dir)
    SubnetConfig([2, 0, 4], [64, 0, 32]).save(tmp_path / "s.json")
    out = tmp_path / "bundle"
    args = ["--subnet", str(tmp_path / "s.json"), "--formats", "int8", "--task", "mrpc"]
    args += ["--calibration-file", str(shared_data / "glue" / "MRPC" / "dev.tsv"), "--calibration-size", "16"]
    args += ["--eval-size", "16", "--max-length", "128"]  # 128 is capped at the model's 64 positions
    assert _export(tokenizer_dir, out, *args) == 0
    manifest = json.loads((out / "bundle.json").read_text())
    q = manifest["quantization"]
    assert q["calibration_examples"] == 16 and q["eval_examples"] == 16 and q["metric"] == "accuracy_f1"
    assert manifest["id2label"] == {"0": "not_equivalent", "1": "equivalent"}
    assert manifest["tokenizer_max_length"] == 64
    capsys.readouterr()


def test_unknown_task_is_named(supernet_dir, tmp_path, capsys):
    SubnetConfig([1, 0, 2], [8, 16, 0]).save(tmp_path / "s.json")
    out = tmp_path / "bundle"
    assert _export(supernet_dir, out, "--subnet", str(tmp_path / "s.json"), "--task", "glue-x") == 2
    err = capsys.readouterr().err
    assert "task: unknown task 'glue-x'" in err and "text-classification" in err and not out.exists()
