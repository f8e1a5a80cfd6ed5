"""Cost metrics of a sub-network: one function per module."""

from eftnas_deploy.metrics.macs import count_macs
from eftnas_deploy.metrics.params import count_params

__all__ = ["count_macs", "count_params"]
