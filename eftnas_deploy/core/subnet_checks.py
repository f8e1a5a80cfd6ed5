"""Checks before a sub-network becomes a deployed model: inside the trained search space, not empty."""

from __future__ import annotations

from pathlib import Path

from eftnas_deploy.core.errors import SubnetConfigError
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.core.subnet import SubnetConfig

SPACE_FILE = "search_space.json"
ALLOW_FLAG = "--allow-untrained-subnet"


def check_deployable(
    subnet: SubnetConfig, geometry: ModelGeometry, supernet_dir: str | Path | None = None, allow_untrained: bool = False
) -> SubnetConfig:
    """Refuse a sub-network the super-network was not trained for, naming the layer, unless `allow_untrained`.

    It must fit the geometry, keep at least one block, and (when the super-network directory has its
    search_space.json) pick only choices of that space: weights were only trained for those widths.
    """
    subnet.validate(geometry)
    if allow_untrained:
        return subnet
    if not any(subnet.heads) and not any(subnet.ffn):
        raise SubnetConfigError(
            f"subnet: every block is dropped (all heads and FFN widths are 0); pass {ALLOW_FLAG} to export it anyway"
        )
    space_file = Path(supernet_dir) / SPACE_FILE if supernet_dir is not None else None
    if space_file is not None and space_file.is_file():
        space = SearchSpace.load(space_file)
        try:
            space.check(subnet)
        except SubnetConfigError as exc:
            raise SubnetConfigError(
                f"subnet: {exc} of {space_file} (the super-network was not trained for it); "
                f"pass {ALLOW_FLAG} to use it anyway"
            ) from None
    return subnet
