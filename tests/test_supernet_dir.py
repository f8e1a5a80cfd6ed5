"""The super-network directory describes itself (supernet.json): task, space, settings; old directories still load."""

from __future__ import annotations

import json

import pytest

from eftnas_deploy.app.cli import main
from eftnas_deploy.app.supernet_dir import DESCRIPTOR_FILE, read_descriptor, resolve_task, write_descriptor
from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.io import write_json
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.supernet.elastic import SuperNetwork
from tests.conftest import tiny_model


def _describe(directory, task: str, head: str, net: SuperNetwork) -> None:
    space = SearchSpace.full_range(net.geometry)
    space.save(directory / "search_space.json")
    write_descriptor(
        directory, task=task, model_type="bert", head=head, space=space, space_kind="full-range",
        data={"train_file": None, "max_length": 32}, training={"strategy": "full"}, teacher=None, seed=3,
    )  # fmt: skip


@pytest.fixture
def qa_supernet(tmp_path):
    """A QA super-network whose config.json no longer tells its head (the case `--task` used to get wrong)."""
    net = SuperNetwork(tiny_model(task="question-answering"))
    directory = tmp_path / "qa"
    net.save_pretrained(directory)
    config = json.loads((directory / "config.json").read_text())
    config.pop("architectures", None)
    config.pop("eftnas_parent", None)
    (directory / "config.json").write_text(json.dumps(config))
    _describe(directory, "squad", "question-answering", net)
    SubnetConfig.full(net.geometry).save(tmp_path / "subnet.json")
    return directory


def test_descriptor_round_trip(qa_supernet):
    record = json.loads((qa_supernet / DESCRIPTOR_FILE).read_text())
    assert record["format_version"] == 1 and record["task"] == "squad"
    assert record["model"] == {"type": "bert", "head": "question-answering"}
    assert record["search_space"]["file"] == "search_space.json" and record["search_space"]["kind"] == "full-range"
    descriptor = read_descriptor(qa_supernet)
    assert (descriptor.task, descriptor.seed, descriptor.training) == ("squad", 3, {"strategy": "full"})


def test_the_task_comes_from_the_descriptor_and_a_conflicting_task_is_refused(qa_supernet, tmp_path, capsys):
    head, spec = resolve_task(qa_supernet, None)
    assert head == "question-answering" and spec.name == "squad"
    assert resolve_task(qa_supernet, "question-answering")[0] == "question-answering"
    out = tmp_path / "sliced"
    assert main(["slice", "--supernet", str(qa_supernet), "--subnet", str(tmp_path / "subnet.json"),
                 "--out", str(out)]) == 0  # fmt: skip
    assert json.loads((out / "config.json").read_text())["architectures"][0].endswith("ForQuestionAnswering")
    capsys.readouterr()
    code = main(["slice", "--supernet", str(qa_supernet), "--subnet", str(tmp_path / "subnet.json"),
                 "--task", "text-classification", "--out", str(tmp_path / "other")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "task: --task text-classification conflicts with field 'task'" in err and DESCRIPTOR_FILE in err
    with pytest.raises(EftnasError, match="not sst2"):
        resolve_task(qa_supernet, "sst2")


def test_export_takes_the_task_from_the_descriptor(qa_supernet, tmp_path):
    out = tmp_path / "bundle"
    code = main(["export", "--supernet", str(qa_supernet), "--subnet", str(tmp_path / "subnet.json"),
                 "--formats", "pytorch", "--out", str(out)])  # fmt: skip
    assert code == 0
    assert json.loads((out / "pytorch" / "config.json").read_text())["architectures"][0].endswith(
        "ForQuestionAnswering"
    )


def test_old_directories_fall_back_to_their_side_files(tmp_path):
    net = SuperNetwork(tiny_model())
    net.save_pretrained(tmp_path / "old")
    write_json(tmp_path / "old" / "train_config.json", {"task": "sst2", "seed": 4, "max_train_rows": 10})
    descriptor = read_descriptor(tmp_path / "old")
    assert (descriptor.task, descriptor.seed, descriptor.data, descriptor.source) == (
        "sst2",
        4,
        {"max_train_rows": 10},
        "train_config.json",
    )
    assert resolve_task(tmp_path / "old", None) == ("text-classification", None)  # the model's head, as before
    net.save_pretrained(tmp_path / "bare")
    assert read_descriptor(tmp_path / "bare").task is None


def test_an_unknown_format_version_is_one_clear_error(qa_supernet):
    record = json.loads((qa_supernet / DESCRIPTOR_FILE).read_text())
    write_json(qa_supernet / DESCRIPTOR_FILE, {**record, "format_version": 9})
    with pytest.raises(EftnasError, match=r"format_version: .* has format_version 9; this eftnas-deploy reads 1"):
        read_descriptor(qa_supernet)
