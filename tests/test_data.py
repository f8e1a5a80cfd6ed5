"""Task registry, local-file loading of every GLUE format, SQuAD JSON, held-out split and bad input."""

from __future__ import annotations

import json

import pytest

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.data import get_task, held_out_split, load_split
from tests.squad_data import write_squad_json


def test_shared_glue_files_load(shared_data):
    glue = shared_data / "glue"
    sst2 = load_split(get_task("SST-2"), glue / "SST-2" / "dev.tsv")
    assert sst2.column_names == ["sentence", "label"] and len(sst2) == 6735
    assert set(sst2["label"]) == {0, 1}
    rte = load_split(get_task("rte"), glue / "RTE" / "dev.tsv")
    assert len(rte) == 139 and set(rte["label"]) == {0, 1}
    mrpc = load_split(get_task("mrpc"), glue / "MRPC" / "dev.tsv")  # headerless
    assert len(mrpc) == 1500 and mrpc[0]["sentence1"].startswith("They had published")
    assert mrpc[0]["label"] == 1
    # The same headerless file through an explicit positional mapping.
    mapped = load_split(
        get_task("mrpc"), glue / "MRPC" / "dev.tsv", columns={"label": 0, "sentence1": 3, "sentence2": 4}
    )
    assert mapped["sentence2"] == mrpc["sentence2"]


@pytest.mark.parametrize(
    ("task", "header", "rows", "labels"),
    [
        ("cola", ["sentence", "label"], [["the cat sat .", "1"], ["cat the sat", "0"]], [1, 0]),
        ("qqp", ["question1", "question2", "label"], [["how ?", "why ?", "0"], ["a ?", "a ?", "1"]], [0, 1]),
        ("mnli", ["premise", "hypothesis", "label"], [["a", "b", "neutral"], ["a", "c", "contradiction"]], [1, 2]),
        ("qnli", ["question", "sentence", "label"], [["q", "s", "not_entailment"], ["q", "t", "entailment"]], [1, 0]),
        ("stsb", ["sentence1", "sentence2", "label"], [["a", "b", "3.8"], ["c", "d", "0.5"]], [3.8, 0.5]),
    ],
)
@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl"])
def test_every_glue_format_loads_from_local_files(tmp_path, task, header, rows, labels, fmt):
    path = tmp_path / f"train.{fmt}"
    if fmt == "jsonl":
        path.write_text("\n".join(json.dumps(dict(zip(header, r))) for r in rows))
    else:
        sep = "\t" if fmt == "tsv" else ","
        path.write_text("\n".join(sep.join(r) for r in [header, *rows]) + "\n")
    data = load_split(get_task(task), path)
    assert data["label"] == pytest.approx(labels)
    assert len(data) == len(rows)


def test_column_mapping_renames_file_columns(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,target\ngood film,1\nbad film,0\n")
    data = load_split(get_task("sst2"), path, columns={"sentence": "text", "label": "target"})
    assert data["sentence"] == ["good film", "bad film"] and data["label"] == [1, 0]


def test_bad_input_errors_name_the_field(tmp_path):
    with pytest.raises(EftnasError, match="task: unknown task 'sst3'"):
        get_task("sst3")
    missing = tmp_path / "m.tsv"
    missing.write_text("text\tlabel\nhello\t1\n")
    with pytest.raises(EftnasError, match=r"columns: .*lacks \['sentence'\]"):
        load_split(get_task("sst2"), missing)
    out_of_range = tmp_path / "r.tsv"
    out_of_range.write_text("sentence\tlabel\nhello\t1\nworld\t2\n")
    with pytest.raises(EftnasError, match=r"label: row 1 .*label 2 out of range for task sst2"):
        load_split(get_task("sst2"), out_of_range)
    unknown = tmp_path / "u.tsv"
    unknown.write_text("sentence1\tsentence2\tlabel\na\tb\tmaybe\n")
    with pytest.raises(EftnasError, match="unknown label 'maybe'"):
        load_split(get_task("rte"), unknown)
    with pytest.raises(EftnasError, match=r"columns: \['nope'\] not found"):
        load_split(get_task("sst2"), out_of_range, columns={"sentence": "nope"})
    with pytest.raises(FileNotFoundError):
        load_split(get_task("sst2"), tmp_path / "absent.tsv")


def test_squad_nested_json_and_v2_no_answer(tmp_path):
    v1 = load_split(get_task("squad"), write_squad_json(tmp_path, impossible=False))
    assert v1.column_names == ["id", "context", "question", "answers"]
    assert v1[0]["answers"]["text"] == ["Paris"]
    v2 = load_split(get_task("squad_v2"), write_squad_json(tmp_path, impossible=True))
    assert v2.filter(lambda r: r["id"] == "impossible")[0]["answers"]["text"] == []
    with pytest.raises(EftnasError, match=r"answers: row .* has no answer"):
        load_split(get_task("squad"), write_squad_json(tmp_path, impossible=True))


def test_held_out_split_is_seeded_and_stored(tmp_path, shared_data):
    data = load_split(get_task("rte"), shared_data / "glue" / "RTE" / "train.tsv")
    rest, held = held_out_split(data, tmp_path, fraction=0.1, seed=3)
    assert len(rest) + len(held) == len(data) and len(held) == round(0.1 * len(data))
    stored = json.loads((tmp_path / "held_out.json").read_text())
    assert stored["seed"] == 3 and len(stored["indices"]) == len(held)
    assert set(rest["sentence1"]).isdisjoint(set(held["sentence1"])) or len(set(data["sentence1"])) < len(data)
    again_rest, again_held = held_out_split(data, tmp_path, fraction=0.5, seed=99)  # reuses the stored indices
    assert again_held["sentence1"] == held["sentence1"] and len(again_rest) == len(rest)
    with pytest.raises(EftnasError, match="made for"):
        held_out_split(data.select(range(10)), tmp_path)


def test_held_out_indices_come_from_datasets_and_match_earlier_run_dirs(tmp_path):
    import datasets
    import numpy as np

    from eftnas_deploy.data.split import held_out_indices

    # datasets' train_test_split draws the same rows the hand-written permutation did before it
    assert held_out_indices(5000, 500, 3) == sorted(np.random.default_rng(3).permutation(5000)[:500].tolist())
    data = datasets.Dataset.from_dict({"sentence": [f"s{i}" for i in range(20)], "label": [i % 2 for i in range(20)]})
    legacy = {"seed": 0, "fraction": 0.1, "num_train_rows": 20, "indices": [4, 17]}  # an earlier run's file
    (tmp_path / "held_out.json").write_text(json.dumps(legacy))
    rest, held = held_out_split(data, tmp_path, fraction=0.3, seed=5)
    assert held["sentence"] == ["s4", "s17"] and len(rest) == 18
    with pytest.raises(EftnasError, match="held_out_fraction"):
        held_out_indices(2, 2, 0)
