"""A seeded held-out split carved from train, stored in the run dir so search never sees dev."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.io import read_json, write_json

HELD_OUT_FILE = "held_out.json"


def held_out_split(
    train: datasets.Dataset, run_dir: str | Path, fraction: float = 0.1, seed: int = 0, max_size: int | None = None
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """(remaining train, held-out) rows; indices are written to (or reused from) `run_dir/held_out.json`."""
    if not 0.0 < fraction < 1.0:
        raise EftnasError(f"held_out_fraction: must be in (0, 1), got {fraction}")
    path = Path(run_dir) / HELD_OUT_FILE
    n = len(train)
    if path.is_file():
        record = read_json(path, "held-out split")
        if record.get("num_train_rows") != n:
            raise EftnasError(
                f"held-out split: {path} was made for {record.get('num_train_rows')} train rows, data has {n}"
            )
        held = [int(i) for i in record["indices"]]
    else:
        size = max(1, round(n * fraction))
        if max_size is not None:
            size = min(size, max_size)
        held = held_out_indices(n, size, seed)
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        write_json(path, {"seed": seed, "fraction": fraction, "num_train_rows": n, "indices": held})
    held_set = set(held)
    rest = [i for i in range(n) if i not in held_set]
    return train.select(rest), train.select(held)


def held_out_indices(n: int, size: int, seed: int) -> list[int]:
    """Sorted row indices of a seeded `size`-row test split, drawn by `datasets.Dataset.train_test_split`.

    It permutes with `numpy.random.default_rng(seed)` and takes the first `size` rows, so the indices equal
    those of run dirs written before it was used here.
    """
    if size >= n:
        raise EftnasError(f"held_out_fraction: {size} held-out rows leave none of the {n} train rows for training")
    rows = datasets.Dataset.from_dict({"row": np.arange(n, dtype=np.int64)})
    test = rows.train_test_split(test_size=size, shuffle=True, seed=seed)["test"]
    return sorted(int(i) for i in test["row"])
