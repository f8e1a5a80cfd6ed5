"""eftnas-deploy: first-order weight-reordered super-networks for CPU deployment.

The names below load lazily (PEP 562), so `import eftnas_deploy.core` stays torch-free.
"""

from __future__ import annotations

import importlib
from typing import Any

# The model-family registry is torch-free data that core's geometry consults; fill it before any subpackage runs.
from eftnas_deploy import families as _families  # noqa: F401

__version__ = "0.1.0"

_EXPORTS = {
    "EftnasError": "eftnas_deploy.core.errors",
    "OutputDirError": "eftnas_deploy.core.errors",
    "SearchSpaceError": "eftnas_deploy.core.errors",
    "SubnetConfigError": "eftnas_deploy.core.errors",
    "ModelGeometry": "eftnas_deploy.core.geometry",
    "SearchSpace": "eftnas_deploy.core.space",
    "SubnetConfig": "eftnas_deploy.core.subnet",
    "count_macs": "eftnas_deploy.metrics",
    "count_params": "eftnas_deploy.metrics",
    "SuperNetwork": "eftnas_deploy.supernet.elastic",
    "build_model": "eftnas_deploy.families.models",
    "load_model": "eftnas_deploy.supernet.loading",
    "permute_ffn": "eftnas_deploy.supernet.reorder",
    "permute_heads": "eftnas_deploy.supernet.reorder",
    "load_sliced": "eftnas_deploy.supernet.slicing",
    "save_sliced": "eftnas_deploy.supernet.slicing",
    "slice_subnet": "eftnas_deploy.supernet.slicing",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'eftnas_deploy' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return [*globals(), *_EXPORTS]
