"""The verbs every elastic controller shares (super-network, super-adapter, both): activate, reset, call."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from eftnas_deploy.core.subnet import SubnetConfig

_T = TypeVar("_T", bound="Switchable")


class Switchable:
    """Mixin: a controller with `model`, `set_subnet(subnet)` and `full()` gets `active`, `reset`, `activate`."""

    model: Any
    _active: SubnetConfig

    def set_subnet(self, subnet: SubnetConfig) -> None:
        raise NotImplementedError

    def full(self) -> SubnetConfig:
        raise NotImplementedError

    @property
    def active(self) -> SubnetConfig:
        return self._active

    def reset(self) -> None:
        """Back to the whole super-network."""
        self.set_subnet(self.full())

    @contextmanager
    def activate(self: _T, subnet: SubnetConfig) -> Iterator[_T]:
        """Temporarily activate a sub-network."""
        previous = self._active
        self.set_subnet(subnet)
        try:
            yield self
        finally:
            self.set_subnet(previous)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)
