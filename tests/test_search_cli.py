"""`eftnas-deploy search` on a real tiny super-network run dir (synthetic SST-2-style data)."""

from __future__ import annotations

import json

import pytest

from eftnas_deploy import SearchSpace, SubnetConfig, SuperNetwork
from eftnas_deploy.app.cli import main
from eftnas_deploy.core.io import write_json
from eftnas_deploy.data import get_task, held_out_split, load_split
from eftnas_deploy.data.synthetic import make_dataset, train_tokenizer
from tests.conftest import tiny_model


@pytest.fixture(scope="module")
def supernet_run(tmp_path_factory):
    """What `train-supernet` leaves behind: weights, tokenizer, space, train_config.json, held_out.json."""
    root = tmp_path_factory.mktemp("search")
    data = make_dataset(300, seed=0)
    train_file = root / "train.tsv"
    train_file.write_text("sentence\tlabel\n" + "".join(f"{e.text}\t{e.label}\n" for e in data))
    tokenizer = train_tokenizer([e.text for e in data], vocab_size=120)
    run = root / "supernet"
    supernet = SuperNetwork(tiny_model(vocab_size=tokenizer.vocab_size))
    supernet.save_pretrained(run)
    tokenizer.save_pretrained(run)
    SearchSpace(heads=[[4, 2, 1]] * 3, ffn=[[128, 64, 0]] * 3).save(run / "search_space.json")
    write_json(run / "train_config.json", {"task": "sst2", "train_file": str(train_file), "seed": 0, "max_length": 32})
    held_out_split(load_split(get_task("sst2"), train_file), run, 0.2, 0)
    return run


def test_search_with_a_mac_budget_writes_the_front_and_resumes(supernet_run, tmp_path):
    out = tmp_path / "search"
    args = ["search", "--supernet", str(supernet_run), "--objective", "macs", "--max-macs", "8.0",
            "--evals", "15", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    pareto = json.loads((out / "pareto.json").read_text())
    assert pareto["points"] and all(p["cost"] <= 8.0 for p in pareto["points"])
    assert all(SubnetConfig.from_dict(p["subnet"]) for p in pareto["points"])
    summary = json.loads((out / "search_summary.json").read_text())
    assert summary["trials"] == 15 and summary["chosen"]["cost"] <= 8.0
    assert SubnetConfig.load(out / "subnet.json").to_dict() == summary["chosen"]["subnet"]
    assert (out / "pareto.png").stat().st_size > 1000
    assert main([*args[:-4], "--evals", "20", "--out", str(out), "--resume"]) == 0
    again = json.loads((out / "search_summary.json").read_text())
    assert again["trials"] == 20 and again["new_evaluations"] <= 5
    assert main(args) == 2  # non-empty --out without --overwrite or --resume


def test_latency_objective_without_a_lut_is_refused(supernet_run, tmp_path, capsys):
    code = main(["search", "--supernet", str(supernet_run), "--objective", "latency", "--evals", "3",
                 "--out", str(tmp_path / "s")])  # fmt: skip
    assert code == 2 and "LUT" in capsys.readouterr().err


def test_a_budget_below_the_smallest_subnet_is_refused(supernet_run, tmp_path, capsys):
    code = main(["search", "--supernet", str(supernet_run), "--objective", "macs", "--max-macs", "1",
                 "--evals", "3", "--out", str(tmp_path / "s")])  # fmt: skip
    assert code == 2 and "max_macs: budget 1 is below the smallest sub-network" in capsys.readouterr().err


def test_search_against_a_lut_respects_the_latency_budget_and_remeasures(supernet_run, tmp_path):
    lut = tmp_path / "lut.json"
    quick = ["--warmup", "1", "--repeats", "3", "--min-time", "0", "--stack", "2"]
    space_file = str(supernet_run / "search_space.json")
    assert main(["lut", "measure", "--model", str(supernet_run), "--seq-len", "16", "--calibration", "2",
                 "--search-space", space_file, *quick, "--out", str(lut)]) == 0  # fmt: skip
    from latency_lut.predict import LatencyPredictor

    predictor = LatencyPredictor.from_file(lut)
    space = SearchSpace.load(supernet_run / "search_space.json")
    # Tiny blocks take microseconds, so keep a clear margin above the smallest prediction despite noise.
    budget = max(1.25 * predictor(space.smallest()), (predictor(space.smallest()) + predictor(space.largest())) / 2)
    out = tmp_path / "search"
    assert main(["search", "--supernet", str(supernet_run), "--lut", str(lut), "--max-latency-ms", f"{budget:.6f}",
                 "--evals", "12", "--remeasure-top", "2", "--out", str(out)]) == 0  # fmt: skip
    pareto = json.loads((out / "pareto.json").read_text())
    assert pareto["objective"] == "latency"
    assert all(p["predicted_latency_ms"] <= budget + 1e-9 for p in pareto["points"])
    remeasured = [p for p in pareto["points"] if "measured_latency_ms" in p]
    assert len(remeasured) == min(2, len(pareto["points"]))
    assert all(p["measured_latency_ms"] > 0 for p in remeasured)
    assert pareto["remeasured"]["runtime"] == "onnxruntime"


def test_a_lut_for_another_geometry_is_refused(supernet_run, tmp_path, capsys):
    from latency_lut.config import config_from_geometry

    other = SuperNetwork(tiny_model(hidden_size=32, num_attention_heads=2)).geometry
    config = tmp_path / "config.json"
    config_from_geometry(other).to_json_file(config)
    lut = tmp_path / "lut.json"
    quick = ["--warmup", "1", "--repeats", "2", "--min-time", "0", "--stack", "2", "--grid", "2"]
    assert main(["lut", "measure", "--model", str(config), "--seq-len", "16", "--calibration", "2", *quick,
                 "--out", str(lut)]) == 0  # fmt: skip
    capsys.readouterr()
    code = main(["search", "--supernet", str(supernet_run), "--lut", str(lut), "--evals", "3",
                 "--out", str(tmp_path / "s")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "hidden_size" in err


def test_search_by_distillation_records_the_task_scores_and_a_resume_by_another_metric_is_refused(
    supernet_run, tmp_path, capsys
):
    out = tmp_path / "search"
    args = ["search", "--supernet", str(supernet_run), "--objective", "macs", "--max-macs", "8.0",
            "--evals", "8", "--metric", "distillation", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    summary = json.loads((out / "search_summary.json").read_text())
    assert summary["metric"] == "distillation"
    assert summary["full_network"]["accuracy"] == pytest.approx(1.0)  # the reference agrees with itself
    assert 0.0 < summary["chosen"]["accuracy"] <= 1.0
    assert set(summary["held_out_scores"]) == {"chosen", "full", "smallest"}
    assert json.loads((out / "pareto.json").read_text())["metric"] == "distillation"
    code = main([*args[:-6], "--evals", "10", "--metric", "score", "--out", str(out), "--resume"])
    assert code == 2 and "identity.metric" in capsys.readouterr().err


def test_cheapest_within_delta_under_distillation_measures_delta_in_the_task_score(supernet_run, tmp_path):
    out = tmp_path / "search"
    args = ["search", "--supernet", str(supernet_run), "--objective", "macs", "--evals", "12",
            "--selection", "cheapest-within-delta", "--delta", "0.05", "--out", str(out)]  # fmt: skip
    assert main(args) == 0  # distillation is the default metric
    summary = json.loads((out / "search_summary.json").read_text())
    points = json.loads((out / "pareto.json").read_text())["points"]
    scores = summary["held_out_scores"]
    assert summary["metric"] == "distillation" and all("held_out_score" in p for p in points)
    within = [p for p in points if p["held_out_score"] >= scores["full"] - 0.05]
    assert summary["chosen"]["cost"] == min(p["cost"] for p in within)
    assert scores["chosen"] == summary["chosen"]["held_out_score"]
