"""Load a LUT file for a stated target (runtime, threads, precision, sequence length, batch, geometry).

A LUT's numbers only hold for the target it was measured on. `load_for_target` refuses a file measured for
any other target, naming every difference, unless approximate use is allowed; then the LUT's own target
replaces the asked one, and the differences are returned so callers can say so and record them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eftnas_deploy.core.geometry import ModelGeometry
from latency_lut.table import LatencyTable, LutMismatchError, read_lut

TARGET_FIELDS = ("runtime", "threads", "precision", "seq_len", "batch")


def default_precision(runtime: str) -> str:
    from exporters.runtime import PRECISIONS

    return PRECISIONS.get(runtime, ("fp32",))[0]


def table_target(table: LatencyTable) -> dict[str, Any]:
    """What a LUT was measured for (the precision as requested, when the runtime chose an effective one)."""
    return {
        "runtime": table.runtime,
        "threads": table.threads,
        "precision": table.metadata.get("precision_requested", table.precision),
        "seq_len": table.seq_len,
        "batch": table.batch,
    }


def target_mismatches(table: LatencyTable, geometry: ModelGeometry | None, asked: dict[str, Any]) -> list[str]:
    """Every difference between the LUT and the asked target; None values in `asked` are not checked."""
    problems = table.mismatches(geometry=geometry)
    have = table_target(table)
    for name in TARGET_FIELDS:
        value = asked.get(name)
        if value is None:
            continue
        if name == "precision" and value in (table.precision, have["precision"]):
            continue
        if have[name] != value:
            problems.append(f"{name}: LUT has {have[name]!r}, asked for {value!r}")
    return problems


def load_for_target(
    path: str | Path,
    geometry: ModelGeometry | None,
    asked: dict[str, Any],
    allow_approximate: bool = False,
    flag: str = "--allow-approximate-lut",
    what: str = "lut",
) -> tuple[LatencyTable, list[str]]:
    """(table, mismatches): refused with LutMismatchError naming every mismatch unless `allow_approximate`.

    A length-set file (`latency_lut.lengths`) gives its table at the asked sequence length.
    """
    from latency_lut.lengths import LengthTables, is_length_set

    if is_length_set(path):
        tables = LengthTables.load(path)
        seq_len = asked.get("seq_len")
        if seq_len not in tables.lengths:
            raise LutMismatchError(
                f"{what}: {path} was measured at sequence lengths {tables.lengths}; the asked length {seq_len} "
                "is not one of them (set lut.seq_len to one of them, or measure that length)"
            )
        table = tables.table_at(seq_len)
    else:
        table = read_lut(path, what)
    problems = target_mismatches(table, geometry, asked)
    if problems and not allow_approximate:
        raise LutMismatchError(
            f"{what}: {path} was measured for another target ({'; '.join(problems)}); "
            f"measure a LUT for this target, or pass {flag} to use it in place of the asked one"
        )
    return table, problems


def describe(target: dict[str, Any]) -> str:
    return (
        f"{target['runtime']} {target['precision']}, {target['threads']} thread(s), "
        f"seq {target['seq_len']}, batch {target['batch']}"
    )
