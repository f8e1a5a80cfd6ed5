"""`eftnas-deploy train-teacher` / `train-supernet` end to end on real SST-2 rows, and their errors."""

from __future__ import annotations

import json

import pytest

from eftnas_deploy.app.cli import main
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.supernet.elastic import SuperNetwork
from tests.training_utils import TOKENIZER_DIR


def test_train_teacher_then_supernet(tmp_path, shared_data):
    sst2 = str(shared_data / "glue" / "SST-2" / "train.tsv")
    common = ["--task", "sst2", "--train-file", sst2, "--max-train-rows", "96", "--max-length", "24"]
    common += ["--batch-size", "16", "--lr", "3e-3"]
    teacher = tmp_path / "teacher"
    sizes = ["--layers", "2", "--hidden-size", "64", "--heads", "4", "--intermediate-size", "128"]
    sizes += ["--max-steps", "4", "--out", str(teacher)]
    code = main(["train-teacher", *common, "--from-scratch", "--tokenizer", str(TOKENIZER_DIR), *sizes])
    assert code == 0 and (teacher / "model.safetensors").is_file() and (teacher / "tokenizer.json").is_file()
    space = SearchSpace(heads=[[4, 2]] * 2, ffn=[[128, 64]] * 2)
    space.save(tmp_path / "space.json")
    out = tmp_path / "supernet"
    args = ["train-supernet", *common, "--model", str(teacher), "--teacher", str(teacher), "--strategy", "full"]
    args += ["--search-space", str(tmp_path / "space.json"), "--max-steps", "4", "--out", str(out)]
    assert main(args) == 0
    scores = json.loads((out / "held_out_scores.json").read_text())
    assert set(scores) == {"largest", "middle", "smallest"} and 0 <= scores["smallest"]["accuracy"] <= 1
    held = json.loads((out / "held_out.json").read_text())
    assert len(held["indices"]) == round(0.1 * 96)
    assert SuperNetwork.from_pretrained(str(out)).geometry.num_layers == 2
    descriptor = json.loads((out / "supernet.json").read_text())  # the one description of the directory
    assert descriptor["task"] == "sst2" and descriptor["model"]["head"] == "text-classification"
    assert descriptor["training"]["strategy"] == "full" and descriptor["teacher"] == str(teacher)
    assert descriptor["data"]["max_train_rows"] == 96 and not (out / "train_config.json").exists()
    assert not (tmp_path / "supernet.partial").exists()
    assert main(args) == 2  # refuses the non-empty output dir without --overwrite


def test_train_cli_bad_input(tmp_path, shared_data, capsys):
    rte = str(shared_data / "glue" / "RTE" / "dev.tsv")
    base = ["train-teacher", "--from-scratch", "--tokenizer", str(TOKENIZER_DIR), "--out", str(tmp_path / "t")]
    assert main([*base, "--task", "nope", "--train-file", rte]) == 2
    assert "task: unknown task 'nope'" in capsys.readouterr().err
    assert main([*base, "--task", "sst2", "--train-file", rte]) == 2
    assert "lacks ['sentence']" in capsys.readouterr().err
    assert main([*base, "--task", "rte", "--train-file", rte, "--columns", "sentence1"]) == 2
    assert "columns: 'sentence1'" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("text", ["label=0,sentence1=3", "sentence=text"])
def test_parse_columns(text):
    from eftnas_deploy.data.loading import parse_columns

    parsed = parse_columns(text)
    assert all(isinstance(v, int) for v in parsed.values()) or parsed == {"sentence": "text"}
