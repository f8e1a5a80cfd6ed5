"""Third-party warnings that say nothing about the user's run, silenced one by one (message, category, module).

Each entry names why it is noise; anything else a library warns about still shows.
"""

from __future__ import annotations

import logging
import warnings

# (message regex, category name, module regex of the code the warning is attributed to)
WARNINGS: tuple[tuple[str, str, str], ...] = (
    # transformers' mask helper builds a constant 1.0 while torch.jit traces the model for ONNX export; the
    # exported graph keeps dynamic axes and every artifact is checked against PyTorch (exporters.parity).
    (r"torch\.tensor results are registered as constants in the trace", "TracerWarning", r"transformers\."),
    # Trainer's checkpoint rotation distrusts mtimes less than 1 s apart; tiny runs save that often.
    (r"mtime may not be reliable on this filesystem", "UserWarning", r"transformers\.trainer"),
)
# logger name -> message prefixes (transformers logs these while optimum re-loads our exported directories)
LOG_MESSAGES: dict[str, tuple[str, ...]] = {
    "transformers.configuration_utils": ("`torch_dtype` is deprecated!",),
    "transformers.modeling_utils": ("`torch_dtype` is deprecated!", "`loss_type=None` was set in the config"),
    # torchao (installed for NNCF's SQFT strip) is imported by transformers when present: it reports its CUDA
    # kernels as missing on a CPU machine, and registers enums the way torch now deprecates.
    "torchao": ("Failed to load ",),
    "torch.utils._pytree": ("<enum ",),
}


class _DropMessages(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


def _category(name: str) -> type[Warning]:
    # torch.jit.TracerWarning is matched as any Warning (its message and module regexes keep the filter narrow),
    # so installing the filters does not import torch (`eftnas-deploy --help` stays fast).
    return {"UserWarning": UserWarning, "FutureWarning": FutureWarning, "TracerWarning": Warning}[name]


def quiet_third_party() -> None:
    """Install the filters above (idempotent: a logger gets one filter; warnings filters are de-duplicated)."""
    for message, category, module in WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=_category(category), module=module)
    for name, prefixes in LOG_MESSAGES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages(prefixes))
