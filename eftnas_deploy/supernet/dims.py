"""Elastic dimensions on the torch side: one handler per dimension ("heads", "ffn").

A handler knows, for any registered family, which Linear rows/columns form one unit of its dimension,
how many units a layer has and keeps, and which layer children make up the block a 0 drops. Slicing,
reordering, importance and the elastic layer loop over HANDLERS, so a new dimension is a new handler.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from eftnas_deploy.core.family import AttentionLayout, FamilySpec, FeedForwardLayout
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.families.models import get_submodule


@dataclass(frozen=True)
class UnitGroups:
    """Linear modules whose rows (axis 0) or columns (axis 1) come in `unit` consecutive entries per unit."""

    rows: tuple[nn.Linear, ...]
    columns: tuple[nn.Linear, ...]
    unit: int

    def pairs(self) -> list[tuple[nn.Linear, int]]:
        return [(lin, 0) for lin in self.rows] + [(lin, 1) for lin in self.columns]


class DimensionHandler:
    """Base handler: subclasses name the dimension and read its size from geometry and sub-network."""

    name: str

    def layout(self, family: FamilySpec) -> AttentionLayout | FeedForwardLayout:
        return family.layout(self.name)

    def unit(self, geometry: ModelGeometry) -> int:
        raise NotImplementedError

    def size(self, geometry: ModelGeometry) -> int:
        """Units per layer in the full model."""
        raise NotImplementedError

    def active(self, subnet: SubnetConfig) -> Sequence[int]:
        """Units per layer a sub-network keeps."""
        return getattr(subnet, self.name)

    def groups(self, layer: nn.Module, family: FamilySpec, geometry: ModelGeometry) -> UnitGroups:
        layout = self.layout(family)
        return UnitGroups(
            rows=tuple(get_submodule(layer, p) for p in layout.rows),
            columns=tuple(get_submodule(layer, p) for p in layout.columns),
            unit=self.unit(geometry),
        )

    def state_cuts(
        self, prefix: str, family: FamilySpec, geometry: ModelGeometry, units: int
    ) -> dict[str, tuple[slice, ...]]:
        """State-dict slices keeping the first `units` units of one layer (prefix ends with '.')."""
        layout = self.layout(family)
        width = units * self.unit(geometry)
        cuts: dict[str, tuple[slice, ...]] = {}
        for path in layout.rows:
            cuts[f"{prefix}{path}.weight"] = (slice(0, width),)
            cuts[f"{prefix}{path}.bias"] = (slice(0, width),)
        for path in layout.columns:
            cuts[f"{prefix}{path}.weight"] = (slice(None), slice(0, width))
        return cuts

    def dropped_prefixes(self, prefix: str, family: FamilySpec) -> list[str]:
        """State-dict prefixes of the block a layer with 0 units drops."""
        return [f"{prefix}{child}." for child in self.layout(family).block]

    @torch.no_grad()
    def permute(self, layer: nn.Module, family: FamilySpec, geometry: ModelGeometry, order: torch.Tensor) -> None:
        """Reorder a layer's units (new unit j is old unit order[j]); the function is unchanged."""
        groups = self.groups(layer, family, geometry)
        index = (order[:, None] * groups.unit + torch.arange(groups.unit)).reshape(-1)
        for linear in groups.rows:
            linear.weight.copy_(linear.weight[index])
            if linear.bias is not None:
                linear.bias.copy_(linear.bias[index])
        for linear in groups.columns:
            linear.weight.copy_(linear.weight[:, index])


class HeadsHandler(DimensionHandler):
    name = "heads"

    def unit(self, geometry: ModelGeometry) -> int:
        return geometry.head_dim

    def size(self, geometry: ModelGeometry) -> int:
        return geometry.num_heads


class FfnHandler(DimensionHandler):
    name = "ffn"

    def unit(self, geometry: ModelGeometry) -> int:
        return 1

    def size(self, geometry: ModelGeometry) -> int:
        return geometry.intermediate_size


HANDLERS: dict[str, DimensionHandler] = {h.name: h for h in (HeadsHandler(), FfnHandler())}
