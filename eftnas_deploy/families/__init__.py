"""Model families: one data file per architecture (bert, roberta, distilbert), registered in core.family.

Importing this package is torch-free: the family files are data. `families.models` resolves the HF classes.
A new family is a new file here, imported below (plus its dense sliced class in supernet/modeling_eftnas.py).
"""

from eftnas_deploy.core.family import FamilySpec, family_names, get_family
from eftnas_deploy.families import bert, distilbert, roberta  # noqa: F401  (registration)

__all__ = ["FamilySpec", "family_names", "get_family"]
