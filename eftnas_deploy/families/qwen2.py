"""Qwen2: Llama's layout with biased Q/K/V projections (and optional sliding-window layers) (pure data)."""

from __future__ import annotations

from eftnas_deploy.core.decoder_family import DecoderFamilySpec, register_decoder_family
from eftnas_deploy.families.llama import LLAMA_CONFIG_FIELDS

QWEN2 = register_decoder_family(
    DecoderFamilySpec(
        model_type="qwen2",
        config_class="Qwen2Config",
        model_class="Qwen2ForCausalLM",
        dense_class="EftnasQwen2ForCausalLM",
        config_fields=LLAMA_CONFIG_FIELDS,
    )
)
