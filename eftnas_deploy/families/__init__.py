"""Model families: one data file per architecture, registered in core.family (encoders: bert, roberta,
distilbert) or core.decoder_family (decoder LLMs: llama, qwen2).

Importing this package is torch-free: the family files are data. `families.models` resolves the HF classes.
A new family is a new file here, imported below (plus its dense sliced class in supernet/modeling_eftnas.py,
or modeling_eftnas_decoder.py for a decoder).
"""

from eftnas_deploy.core.family import FamilySpec, family_names, get_family
from eftnas_deploy.families import bert, distilbert, llama, qwen2, roberta  # noqa: F401  (registration)

__all__ = ["FamilySpec", "family_names", "get_family"]
