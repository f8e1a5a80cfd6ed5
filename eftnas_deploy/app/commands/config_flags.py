"""Command-line flags generated from the pipeline's per-stage config dataclasses.

A flag made with `add_config_flag` takes its type, default (and for booleans its form) from the config field,
so a command and the pipeline stage it shares a function with cannot drift apart. `config_from_args` builds
the config back from the parsed arguments and validates it with the pipeline's own checks.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

from eftnas_deploy.core.errors import EftnasError


def config_default(cls: type, name: str) -> Any:
    """The default of field `name` of config dataclass `cls`."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            raise EftnasError(f"{cls.__name__}.{name}: has no default")
    raise EftnasError(f"{cls.__name__}: no field {name!r}")


def _scalar_type(hint: Any) -> Any:
    """int / float / str / bool of a field annotation (`X | None` -> X)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return hint


def add_config_flag(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    name: str,
    *flags: str,
    help: str | None = None,
    **kwargs: Any,
) -> argparse.Action:
    """`--name-with-dashes` (or `flags`) for field `name` of `cls`: its type and default come from the field.

    A bool field with default False becomes a switch; one with default True a --x/--no-x pair.
    """
    hint = _scalar_type(typing.get_type_hints(cls)[name])
    default = config_default(cls, name)
    flags = flags or (f"--{name.replace('_', '-')}",)
    kwargs.setdefault("dest", name)
    text = f"{help + ' ' if help else ''}(default: {default})"
    if hint is bool:
        action = argparse.BooleanOptionalAction if default else "store_true"
        return parser.add_argument(*flags, action=action, default=default, help=text, **kwargs)
    if "choices" in kwargs:
        kwargs["choices"] = tuple(kwargs["choices"])  # a registry: its names
    return parser.add_argument(*flags, type=hint, default=default, help=text, **kwargs)


def config_from_args(
    cls: type, args: argparse.Namespace, check: bool = True, flags: dict[str, str] | None = None, **fixed: Any
) -> Any:
    """`cls` with every field found in `args` (others at their defaults, `fixed` on top), checked unless not
    `check` (data settings: loading the data checks them with the data layer's own messages). A problem is
    named by its flag (`flags` maps fields set from another flag, e.g. min_fraction -> fraction-range)."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(args).items() if k in names}
    if not check:
        return cls(**{**values, **fixed})
    from eftnas_deploy.app.pipeline.config import check_section

    config, problems = check_section(cls, {**values, **fixed})
    if problems:
        field_name, problem = problems[0]
        raise EftnasError(f"{(flags or {}).get(field_name, field_name.replace('_', '-'))}: {problem}")
    return config


def add_run_dir_flags(p: argparse.ArgumentParser, set_example: str) -> None:
    """--out, --set KEY=VALUE (repeatable) and --overwrite: what every resumable run command takes."""
    p.add_argument("--out", help="run directory (default: the config's `out`)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override any config field, e.g. --set {set_example} (repeatable)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="start afresh (delete the run dir's contents)")


def flag_overrides(args: argparse.Namespace, flags: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(dotted overrides from the flags that were given and from --set, the --set ones alone)."""
    from eftnas_deploy.app.pipeline.config import parse_assignments

    sets = parse_assignments(args.set)
    given = {key: getattr(args, flag) for flag, key in flags.items() if getattr(args, flag) is not None}
    return {**given, **sets}, sets
