"""Search-space kinds by name (`space.kind` in the pipeline config, `--kind` of `eftnas-deploy space`).

Every kind turns an importance-sorted model (its `ImportanceScores`) and the MAC range of the space into a
`SearchSpace` of per-layer choices, the one space type the rest of the pipeline consumes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from eftnas_deploy.core.errors import SearchSpaceError
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.importance.scores import ImportanceScores
from eftnas_deploy.space.generate import evenly_spaced_targets, generate_search_space, macs_cost
from eftnas_deploy.space.klein import medium_space


@dataclass(frozen=True)
class SpaceRequest:
    """What a kind may use: sorted importance, the MAC range [low, high] and the generation settings."""

    scores: ImportanceScores
    low: float
    high: float
    num_targets: int = 5
    seq_len: int = 128
    tolerance: float = 0.02
    skip_fraction: float = 0.02
    ffn_multiple: int = 32


SpaceBuilder = Callable[[SpaceRequest], SearchSpace]
SPACE_KINDS: dict[str, SpaceBuilder] = {}  # name -> builder, registered once below


def register_space_kind(name: str) -> Callable[[SpaceBuilder], SpaceBuilder]:
    def add(fn: SpaceBuilder) -> SpaceBuilder:
        if name in SPACE_KINDS:
            raise SearchSpaceError(f"kind: {name!r} is registered twice")
        SPACE_KINDS[name] = fn
        return fn

    return add


@register_space_kind("eftnas")
def eftnas_space(request: SpaceRequest) -> SearchSpace:
    """EFTNAS: the sub-networks kept by importance thresholds at evenly spaced MAC targets, per layer."""
    geometry = request.scores.geometry
    return generate_search_space(
        request.scores,
        evenly_spaced_targets(request.low, request.high, request.num_targets),
        cost_fn=macs_cost(geometry, request.seq_len),
        tolerance=request.tolerance,
        skip_fraction=request.skip_fraction,
        ffn_multiple=min(request.ffn_multiple, geometry.intermediate_size),
    )


@register_space_kind("medium")
def klein_medium_space(request: SpaceRequest) -> SearchSpace:
    """Klein et al.'s medium space: every head count, FFN widths in `ffn_multiple` steps (8 widths at most), 0."""
    geometry = request.scores.geometry
    step = max(request.ffn_multiple, geometry.intermediate_size // 8)
    return medium_space(geometry, ffn_step=min(step, geometry.intermediate_size)).validate(geometry)


def build_space(kind: str, request: SpaceRequest) -> SearchSpace:
    if kind not in SPACE_KINDS:
        raise SearchSpaceError(f"kind: {kind!r} is not one of {tuple(SPACE_KINDS)}")
    space = SPACE_KINDS[kind](request)
    space.metadata["kind"] = kind
    return space
