import json

from eftnas_deploy import SubnetConfig, SuperNetwork
from eftnas_deploy.app.cli import main
from tests.conftest import tiny_model


def test_slice_and_cost_commands(tmp_path, capsys):
    SuperNetwork(tiny_model()).save_pretrained(tmp_path / "sn")
    SubnetConfig([1, 0, 2], [8, 16, 0]).save(tmp_path / "s.json")
    assert main(["slice", "--supernet", str(tmp_path / "sn"), "--subnet", str(tmp_path / "s.json"),
                 "--out", str(tmp_path / "d")]) == 0  # fmt: skip
    assert (tmp_path / "d" / "config.json").is_file()
    capsys.readouterr()
    assert main(["cost", "--model", str(tmp_path / "sn"), "--subnet", str(tmp_path / "s.json"), "--seq-len", "16"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0 < result["macs_fraction"] < 1 and "adapter_params" not in result
    ranks = SubnetConfig(heads=[1, 0, 2], ffn=[8, 16, 0], lora_qkv=[4, 0, 2], lora_up=[4, 4, 4], lora_down=[0, 0, 4])
    ranks.save(tmp_path / "r.json")
    assert main(["cost", "--model", str(tmp_path / "sn"), "--subnet", str(tmp_path / "r.json"), "--seq-len", "16"]) == 0
    with_ranks = json.loads(capsys.readouterr().out)
    assert with_ranks["params"] == result["params"] and with_ranks["macs"] == result["macs"]  # merged: free
    assert with_ranks["adapter_params"] > 0


def test_bad_subnet_file_gives_clear_error(tmp_path, capsys):
    SuperNetwork(tiny_model()).save_pretrained(tmp_path / "sn")
    SubnetConfig([9, 0, 2], [8, 16, 0]).save(tmp_path / "s.json")
    code = main(["slice", "--supernet", str(tmp_path / "sn"), "--subnet", str(tmp_path / "s.json"),
                 "--out", str(tmp_path / "d")])  # fmt: skip
    assert code == 2
    assert "layer 0: 9 heads requested, model has 4" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
