import json
import math
import random

import pytest

from eftnas_deploy.app.cli import main
from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.space import SearchSpace, sample_across_cost
from eftnas_deploy.core.subnet import SubnetConfig
from exporters.runtime import RuntimeSpec
from latency_lut.config import config_from_geometry, load_supernet
from latency_lut.measure import TimingSettings, build_lut
from latency_lut.predict import LatencyPredictor, entries_sum_us
from latency_lut.table import LatencyTable, LutMismatchError, Overhead, width_grid
from latency_lut.validate import error_summary, validate_luts, validation_warning

GEOMETRY = ModelGeometry(
    model_type="bert",
    num_layers=2,
    num_heads=4,
    head_dim=16,
    hidden_size=64,
    intermediate_size=128,
    vocab_size=120,
    max_position_embeddings=64,
    type_vocab_size=2,
)
SPACE = SearchSpace(heads=[[0, 2, 4]] * 2, ffn=[[0, 64, 128]] * 2)
QUICK = TimingSettings(warmup=1, repeats=3, min_time_s=0.0, stack=2)


def hand_table(**overrides) -> LatencyTable:
    """A table with hand-written entries (for schema and arithmetic tests, not measurements)."""
    fields = dict(
        geometry=GEOMETRY,
        runtime="onnxruntime",
        runtime_version="1.0",
        threads=1,
        precision="fp32",
        seq_len=16,
        batch=1,
        fixed_us=100.0,
        entries={
            "attention": {1: {"median_us": 10.0}, 3: {"median_us": 30.0}, 4: {"median_us": 50.0}},
            "ffn": {32: {"median_us": 20.0}, 128: {"median_us": 80.0}},
        },
        overhead=Overhead(constant_us=7.0, scale=0.1),
        metadata={"cpu": "test"},
    )
    return LatencyTable(**{**fields, **overrides})


def test_schema_round_trip(tmp_path):
    table = hand_table()
    path = table.save(tmp_path / "lut.json")
    loaded = LatencyTable.load(path, geometry=GEOMETRY, runtime="onnxruntime", threads=1, seq_len=16)
    assert loaded.to_dict() == table.to_dict()
    raw = json.loads(path.read_text())
    assert raw["format_version"] == 1 and raw["target"]["precision"] == "fp32"
    assert set(raw["entries"]["attention"]) == {"0", "1", "3", "4"}


@pytest.mark.parametrize(
    ("asked", "named"),
    [
        (
            {"geometry": ModelGeometry.from_dict({**GEOMETRY.to_dict(), "hidden_size": 128, "head_dim": 32})},
            "geometry.hidden_size: 64 != 128",
        ),
        ({"runtime": "openvino"}, "runtime: LUT has 'onnxruntime', asked for 'openvino'"),
        ({"threads": 4}, "threads: LUT has 1, asked for 4"),
        ({"seq_len": 128}, "seq_len: LUT has 16, asked for 128"),
    ],
)
def test_mismatched_lut_is_refused_unless_approximate(tmp_path, asked, named):
    path = hand_table().save(tmp_path / "lut.json")
    with pytest.raises(LutMismatchError, match=named.replace("(", r"\(")):
        LatencyTable.load(path, **asked)
    assert LatencyTable.load(path, allow_approximate=True, **asked).seq_len == 16


def test_bad_lut_files_name_the_field(tmp_path):
    data = hand_table().to_dict()
    del data["target"]["threads"]
    (tmp_path / "a.json").write_text(json.dumps(data))
    with pytest.raises(EftnasError, match=r"target\.threads"):
        LatencyTable.load(tmp_path / "a.json")
    data = {**hand_table().to_dict(), "format_version": 99}
    (tmp_path / "b.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="format_version"):
        LatencyTable.load(tmp_path / "b.json")


def test_piecewise_linear_interpolation():
    table = hand_table()
    assert table.block_us("attention", 2) == pytest.approx(20.0)
    assert table.block_us("ffn", 80) == pytest.approx(50.0)
    assert table.block_us("ffn", 0) == 0.0
    with pytest.raises(LutMismatchError, match="ffn: width 16 is outside the measured range"):
        table.block_us("ffn", 16)
    with pytest.raises(LutMismatchError, match="attention: width 5"):
        table.block_us("attention", 5)
    assert width_grid(range(1, 13), 4) == [1, 5, 8, 12]
    assert width_grid([4, 2], None) == [2, 4]


def test_prediction_is_sum_of_entries_plus_overhead():
    table = hand_table()
    predictor = LatencyPredictor(table)
    full = SubnetConfig.full(GEOMETRY)
    entries = 100.0 + 2 * 50.0 + 2 * 80.0
    assert entries_sum_us(table, full) == pytest.approx(entries)
    assert predictor.predict_us(full) == pytest.approx(entries * 1.1 + 7.0)
    assert predictor(full) == pytest.approx(predictor.predict_us(full) / 1e3)
    rng = random.Random(0)
    for _ in range(20):
        subnet = SubnetConfig(heads=[rng.choice([0, 1, 2, 3, 4]) for _ in range(2)], ffn=[rng.choice([0, 40, 128])] * 2)
        assert predictor.predict_us(subnet) == pytest.approx(entries_sum_us(table, subnet) * 1.1 + 7.0)


def test_predictor_refuses_what_the_lut_cannot_answer():
    predictor = LatencyPredictor(hand_table())
    with pytest.raises(LutMismatchError, match="3 layers given"):
        predictor.predict_us(SubnetConfig(heads=[1, 1, 1], ffn=[32, 32, 32]))
    with pytest.raises(LutMismatchError, match="layer 1: ffn: width 16"):
        predictor.predict_us(SubnetConfig(heads=[1, 1], ffn=[32, 16]))
    with pytest.raises(LutMismatchError, match="layer 0: attention: width 9"):
        predictor.predict_us(SubnetConfig(heads=[9, 1], ffn=[32, 32]))


def test_samples_span_the_cost_range_and_are_seeded():
    space = SearchSpace.full_range(GEOMETRY)
    a = sample_across_cost(space, 8, seed=3)
    assert a == sample_across_cost(space, 8, seed=3) and len(set(a)) == 8
    assert all(s in space for s in a)
    sizes = [sum(s.heads) + sum(s.ffn) / 32 for s in a]
    assert sizes[0] < sizes[-1]
    summary = error_summary([95.0, 104.0, 120.0], [100.0, 100.0, 100.0])
    assert summary["within_5pct"] == pytest.approx(2 / 3) and summary["max_abs_pct"] == pytest.approx(20.0)
    assert summary["within_3pct"] == pytest.approx(0.0)
    warning = validation_warning(summary)  # 2 of 3 within ±10%: not trusted, and the warning says what to do
    assert "FAILED" in warning and "67%" in warning and "--clock cpu" in warning
    assert validation_warning(error_summary([101.0, 99.0], [100.0, 100.0])) is None


@pytest.mark.parametrize(("runtime", "precision"), [("onnxruntime", "fp32"), ("openvino", "f32")])
def test_small_geometry_measured_end_to_end(tmp_path, runtime, precision):
    spec = RuntimeSpec(runtime, 1, precision)
    table = build_lut(
        config_from_geometry(GEOMETRY),
        GEOMETRY,
        spec,
        seq_len=16,
        space=SPACE,
        timing=QUICK,
        calibration_samples=2,
        progress=False,
    )
    assert table.runtime == runtime and table.precision in ("fp32", "f32") and table.threads == 1
    assert sorted(table.entries["attention"]) == [0, 2, 4] and sorted(table.entries["ffn"]) == [0, 64, 128]
    assert table.fixed_us > 0 and table.metadata["cpu"] and table.metadata["build_time_s"] > 0
    assert len(table.overhead.calibration) == 2
    loaded = LatencyTable.load(table.save(tmp_path / "lut.json"), geometry=GEOMETRY, runtime=runtime, seq_len=16)
    supernet = load_supernet(None, GEOMETRY, 16)
    subnets = [SubnetConfig(heads=[4, 2], ffn=[128, 0]), SubnetConfig(heads=[0, 2], ffn=[64, 64])]
    (report,) = validate_luts([loaded], supernet, subnets, QUICK, progress=False)
    assert report["n"] == 2 and report["runtime"] == runtime
    for row in report["samples"]:
        assert row["measured_us"] > 0 and math.isfinite(row["predicted_us"]) and row["predicted_us"] > 0


def test_cli_measure_then_validate(tmp_path, capsys):
    config = tmp_path / "config.json"
    config_from_geometry(GEOMETRY).to_json_file(config)
    SPACE.save(tmp_path / "space.json")
    out = tmp_path / "lut.json"
    quick = ["--warmup", "1", "--repeats", "3", "--min-time", "0", "--stack", "2"]
    args = ["lut", "measure", "--model", str(config), "--seq-len", "16", "--search-space", str(tmp_path / "space.json")]
    assert main([*args, "--grid", "2", "--calibration", "2", *quick, "--out", str(out)]) == 0
    assert main([*args, "--out", str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main(["lut", "measure", "--model", str(config), "--seq-len", "500", "--out", str(tmp_path / "x.json")]) == 2
    assert "seq_len: 500" in capsys.readouterr().err
    plot = tmp_path / "val.png"
    assert main(["lut", "validate", "--lut", str(out), "--samples", "2", *quick, "--plot", str(plot), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 2 and 0.0 <= report["within_10pct"] <= 1.0
    assert plot.stat().st_size > 0 and plot.with_suffix(".json").is_file()


def test_cpu_clock_is_only_for_one_thread():
    from exporters.runtime import time_model

    with pytest.raises(EftnasError, match="clock: 'cpu' time equals latency only for 1 thread"):
        TimingSettings(clock="cpu").check(RuntimeSpec("onnxruntime", 2))
    with pytest.raises(EftnasError, match="clock: 'sundial'"):
        TimingSettings(clock="sundial")
    with pytest.raises(EftnasError, match="clock: 'sundial'"):
        time_model(lambda feeds: None, {}, clock="sundial")
    stats = time_model(lambda feeds: sum(range(20000)), {}, warmup=1, repeats=5, clock="cpu")
    assert stats.repeats == 5 and stats.median_us > 0


def test_overhead_fit_recovers_a_known_affine_correction():
    from latency_lut.measure import fit_overhead

    table = hand_table(overhead=Overhead())
    subnets = [SubnetConfig(heads=[h, 4 - h], ffn=[f, 32]) for h, f in ((0, 0), (1, 32), (3, 128), (4, 128))]
    measured = [1.1 * entries_sum_us(table, s) + 50.0 for s in subnets]
    overhead = fit_overhead(table, subnets, measured)
    assert overhead.scale == pytest.approx(0.1) and overhead.constant_us == pytest.approx(50.0)
    predictor = LatencyPredictor(hand_table(overhead=overhead))
    assert [predictor.predict_us(s) for s in subnets] == pytest.approx(measured)


def _eight_subnets() -> list[SubnetConfig]:
    widths = ((0, 0), (1, 0), (1, 32), (3, 32), (3, 128), (4, 32), (4, 128), (0, 128))
    return [SubnetConfig(heads=[h, 4 - h], ffn=[f, 32 if h else 128]) for h, f in widths]


def test_overhead_fit_recovers_a_square_interaction_term_from_enough_points():
    from latency_lut.measure import fit_overhead

    table = hand_table(overhead=Overhead())
    subnets = _eight_subnets()
    measured = [50.0 + 1.05 * e + 4e-4 * e * e for e in (entries_sum_us(table, s) for s in subnets)]
    overhead = fit_overhead(table, subnets, measured)
    assert overhead.square_per_us == pytest.approx(4e-4) and overhead.scale == pytest.approx(0.05)
    predictor = LatencyPredictor(hand_table(overhead=overhead))
    assert [predictor.predict_us(s) for s in subnets] == pytest.approx(measured)
    # Fewer points than that: the affine fit only.
    assert fit_overhead(table, subnets[:4], measured[:4]).square_per_us == 0.0


def test_overhead_fit_refuses_a_square_term_that_turns_predictions_down():
    from latency_lut.measure import fit_overhead

    table = hand_table(overhead=Overhead())
    subnets = _eight_subnets()
    measured = [200.0 + 1.5 * e - e * e / 400.0 for e in (entries_sum_us(table, s) for s in subnets)]  # peaks in range
    overhead = fit_overhead(table, subnets, measured)
    assert overhead.square_per_us == 0.0
    sums = sorted(entries_sum_us(table, s) for s in subnets)
    assert overhead.correct(sums[-1]) > overhead.correct(sums[0])


def test_overhead_fit_keeps_predictions_positive_when_entries_overstate_the_time():
    from latency_lut.measure import fit_overhead

    table = hand_table(overhead=Overhead())
    subnets = _eight_subnets()[3:6]
    sums = [entries_sum_us(table, s) for s in subnets]
    # Entries about 7x the end-to-end time with no usable slope (seen on a tiny decoder timed under load).
    measured = [s / 7.0 * f for s, f in zip(sums, (1.3, 0.8, 1.1))]
    overhead = fit_overhead(table, subnets, measured)
    assert overhead.constant_us == 0.0 and overhead.scale == pytest.approx(1 / 7 - 1, rel=0.25)
    assert overhead.correct(0.5 * min(sums)) > 0 and overhead.correct(max(sums)) > overhead.correct(min(sums))


def test_overhead_fit_ignores_a_slope_made_of_timer_noise():
    from latency_lut.measure import fit_overhead

    table = hand_table(overhead=Overhead())
    subnets = [SubnetConfig(heads=[4, 4], ffn=[128, 32]), SubnetConfig(heads=[1, 0], ffn=[32, 0])]
    sums = [entries_sum_us(table, s) for s in subnets]
    # The larger sub-network measured faster than the smaller one: a gain of about -3 (seen on the tiny demo).
    measured = [0.8 * sums[1], 1.6 * sums[0]]
    overhead = fit_overhead(table, subnets, measured)
    assert overhead.scale == 0.0 or overhead.constant_us == 0.0  # no fitted slope: a constant, or one gain > 0
    predictor = LatencyPredictor(hand_table(overhead=overhead))
    full, small = (predictor.predict_us(s) for s in subnets)
    assert full > small > 0
