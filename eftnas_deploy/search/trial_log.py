"""An append-only JSONL log of finished trials: what makes a search resumable.

Optuna's persistent storages write (and fsync) every parameter of every trial separately; a search
with 24 parameters then spends most of its time in fsync. The study lives in memory instead, and each
finished trial becomes one line here (one fsync); resuming replays the lines into a new study.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial

from eftnas_deploy.core.errors import EftnasError

FORMAT_VERSION = 1


class TrialLog:
    """`search_trials.jsonl`: a header line with the search settings, then one line per finished trial."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """(settings, trial records); (None, []) for a new log. A torn last line is ignored."""
        if not self.path.is_file():
            return None, []
        lines = self.path.read_text().splitlines()
        records: list[dict[str, Any]] = []
        for i, line in enumerate(lines):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if i < len(lines) - 1:
                    raise EftnasError(f"storage: {self.path} line {i + 1} is corrupt") from None
                # Interrupted while writing the last trial: drop the fragment (the trial is redone).
                tmp = self.path.with_name(self.path.name + ".tmp")
                tmp.write_text("".join(f"{kept}\n" for kept in lines[:-1]))
                tmp.replace(self.path)
        if not records or "settings" not in records[0]:
            raise EftnasError(f"storage: {self.path} is not a search trial log")
        return records[0]["settings"], records[1:]

    def _append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def start(self, settings: dict[str, Any]) -> None:
        self._append({"format_version": FORMAT_VERSION, "settings": settings})

    def append(self, trial: FrozenTrial) -> None:
        self._append(
            {
                "number": trial.number,
                "params": trial.params,
                "values": trial.values,
                "user_attrs": trial.user_attrs,
                "system_attrs": trial.system_attrs,
            }
        )

    @staticmethod
    def replay(study: optuna.Study, records: list[dict[str, Any]], distributions: dict[str, BaseDistribution]) -> None:
        """Add the logged trials to `study` (with the sampler's own bookkeeping attributes)."""
        study.add_trials(
            optuna.trial.create_trial(
                params=r["params"],
                distributions=distributions,
                values=r["values"],
                user_attrs=r["user_attrs"],
                system_attrs=r["system_attrs"],
            )
            for r in records
        )


def changed_settings(saved: Any, mine: Any, prefix: str = "") -> str:
    """'budget.latency: 0.113 -> 0.07, lut: ab12 -> cd34': what differs between two settings records."""
    if isinstance(saved, dict) and isinstance(mine, dict):
        parts = [changed_settings(saved.get(k), mine.get(k), f"{prefix}{k}.") for k in sorted(set(saved) | set(mine))]
        return ", ".join(p for p in parts if p)
    if saved == mine:
        return ""
    name = prefix.rstrip(".") or "settings"
    short = [json.dumps(v)[:60] if v is not None else "none" for v in (saved, mine)]
    return f"{name}: {short[0]} -> {short[1]}"
