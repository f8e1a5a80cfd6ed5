"""Exception types raised on bad user input."""

from __future__ import annotations


class EftnasError(ValueError):
    """Base class for errors caused by bad input (configs, files, arguments)."""


class SubnetConfigError(EftnasError):
    """A sub-network does not fit a model geometry or a search space."""


class SearchSpaceError(EftnasError):
    """A search space is malformed or does not fit a model geometry."""


class OutputDirError(EftnasError):
    """An output directory cannot be written (e.g. non-empty without overwrite)."""
