"""LUTs at several sequence lengths: exact at measured lengths, interpolated between, refused outside."""

import pytest

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.subnet import SubnetConfig
from latency_lut.lengths import LengthTables, is_length_set
from latency_lut.predict import LatencyPredictor
from latency_lut.table import LutMismatchError
from tests.test_lut import hand_table

SUBNET = SubnetConfig(heads=[4, 3], ffn=[128, 32])


def scaled(seq_len: int, factor: float, **overrides):
    table = hand_table(seq_len=seq_len, **overrides)
    table.fixed_us *= factor
    table.entries = {
        k: {w: {"median_us": e["median_us"] * factor} for w, e in v.items()} for k, v in table.entries.items()
    }
    return table


def test_measured_lengths_are_exact_and_lengths_between_interpolate(tmp_path):
    short, long = scaled(16, 1.0), scaled(64, 3.0)
    tables = LengthTables([long, short])  # any order
    assert tables.lengths == [16, 64]
    at16, at64 = LatencyPredictor(short).predict_ms(SUBNET), LatencyPredictor(long).predict_ms(SUBNET)
    assert tables.predict_ms(SUBNET, 16) == at16 and tables.predict_ms(SUBNET, 64) == at64
    assert tables.predict_ms(SUBNET, 40) == pytest.approx((at16 + at64) / 2)
    assert list(tables.curve(SUBNET)) == [16, 64]
    with pytest.raises(LutMismatchError, match=r"seq_len: 128 is outside the measured lengths \[16, 64\]"):
        tables.predict_ms(SUBNET, 128)
    with pytest.raises(LutMismatchError, match="seq_len: 32 was not measured"):
        tables.table_at(32)

    path = tables.save(tmp_path / "lengths.json")
    assert is_length_set(path)
    assert LengthTables.load(path).predict_ms(SUBNET, 40) == pytest.approx(tables.predict_ms(SUBNET, 40))
    single = short.save(tmp_path / "single.json")
    assert not is_length_set(single) and LengthTables.load(single).lengths == [16]


def test_tables_for_another_target_or_a_repeated_length_are_refused():
    with pytest.raises(LutMismatchError, match=r"another target.*threads"):
        LengthTables([scaled(16, 1.0), scaled(64, 2.0, threads=2)])
    with pytest.raises(EftnasError, match="seq_len: 16 is measured twice"):
        LengthTables([scaled(16, 1.0), scaled(16, 2.0)])
    with pytest.raises(EftnasError, match="at least one"):
        LengthTables([])
