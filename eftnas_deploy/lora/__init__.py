"""Elastic-rank LoRA super-adapters (LoNAS / Shears NLS) with peft; see `eftnas_deploy.lora.elastic`."""

from eftnas_deploy.lora.elastic import LORA_GROUPS, ElasticLoRA, ElasticLoraLinear, attach_lora, lora_groups

__all__ = ["LORA_GROUPS", "ElasticLoRA", "ElasticLoraLinear", "attach_lora", "lora_groups"]
