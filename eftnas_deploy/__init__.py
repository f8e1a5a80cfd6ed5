"""eftnas-deploy: first-order weight-reordered super-networks for CPU deployment."""

from eftnas_deploy.elastic import SuperNetwork
from eftnas_deploy.errors import EftnasError, OutputDirError, SearchSpaceError, SubnetConfigError
from eftnas_deploy.geometry import ModelGeometry
from eftnas_deploy.metrics import count_macs, count_params
from eftnas_deploy.models import build_model, load_model
from eftnas_deploy.reorder import permute_ffn, permute_heads
from eftnas_deploy.slicing import load_sliced, save_sliced, slice_subnet
from eftnas_deploy.space import SearchSpace
from eftnas_deploy.subnet import SubnetConfig

__version__ = "0.1.0"

__all__ = [
    "EftnasError",
    "ModelGeometry",
    "OutputDirError",
    "SearchSpace",
    "SearchSpaceError",
    "SubnetConfig",
    "SubnetConfigError",
    "SuperNetwork",
    "build_model",
    "count_macs",
    "count_params",
    "load_model",
    "load_sliced",
    "permute_ffn",
    "permute_heads",
    "save_sliced",
    "slice_subnet",
]
