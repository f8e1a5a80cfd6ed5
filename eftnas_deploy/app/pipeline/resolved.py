"""Where each value of a run's config comes from, and the sections a config file must have.

A pipeline.yaml cut short at a section boundary is still valid YAML, and every missing section silently
falls back to its defaults. `check_config_file` refuses a file (plus flags) without the sections a run needs;
`describe_sources` lists every value that is not a default with its source (file, flag or --set) and the
sections that are defaults only, printed before stage 1 so a partial config shows.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from eftnas_deploy.app.pipeline.config import PipelineConfig
from eftnas_deploy.core.errors import EftnasError

REQUIRED_SECTIONS = ("data", "model")


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file (one-line errors for a missing, binary or malformed file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config: {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise EftnasError(f"config: {path} is not a text file") from None
    except yaml.YAMLError as exc:
        raise EftnasError(f"config: {path} is not valid YAML ({' '.join(str(exc).split())})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise EftnasError(f"config: {path} must hold a mapping of sections")
    return data


def check_config_file(path: str | Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """Refuse a config file that (with the command-line overrides) lacks a section a run needs."""
    data = read_config_file(path)
    given = {key.split(".")[0] for key in overrides}
    for section in REQUIRED_SECTIONS:
        if section not in data and section not in given:
            raise EftnasError(
                f"config: {path} has no '{section}' section (a run needs {' and '.join(REQUIRED_SECTIONS)}; "
                "is the file cut short?)"
            )
        if section in data and not isinstance(data[section], dict):
            raise EftnasError(f"{section}: the section in {path} is empty or not a mapping (is the file cut short?)")
    return data


def describe_sources(
    config: PipelineConfig, file_data: dict[str, Any], file_name: str | None, flags: dict[str, str], sets: set[str]
) -> list[str]:
    """One line per value that is not a default (`key = value  [source]`), then the sections left at defaults.

    `flags` maps dotted keys to the flag that set them; `sets` holds the keys given with --set.
    """
    resolved = _flatten(config.to_dict())
    defaults = _flatten(PipelineConfig().to_dict())
    from_file = _flatten(file_data)
    lines = []
    for key, value in resolved.items():
        if key in sets:
            source = "--set"
        elif key in flags:
            source = flags[key]
        elif key in from_file:
            source = file_name or "file"
        elif value == defaults.get(key):
            continue
        else:
            source = "derived"
        lines.append(f"  {key} = {value!r}  [{source}]")
    sections = [f.name for f in dataclasses.fields(config) if dataclasses.is_dataclass(getattr(config, f.name))]
    given = (*from_file, *flags, *sets)
    untouched = [name for name in sections if not any(k.startswith(f"{name}.") for k in given)]
    if untouched:
        lines.append(f"  sections left at their defaults: {', '.join(untouched)}")
    return lines
