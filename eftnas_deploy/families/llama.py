"""Llama: decoder-only causal LM with grouped-query attention, gated MLP, RMSNorm, rotary (pure data)."""

from __future__ import annotations

from eftnas_deploy.core.decoder_family import DecoderFamilySpec, register_decoder_family

LLAMA_CONFIG_FIELDS = {
    "num_layers": "num_hidden_layers",
    "num_heads": "num_attention_heads",
    "num_kv_heads": "num_key_value_heads",
    "hidden_size": "hidden_size",
    "intermediate_size": "intermediate_size",
    "vocab_size": "vocab_size",
}

LLAMA = register_decoder_family(
    DecoderFamilySpec(
        model_type="llama",
        config_class="LlamaConfig",
        model_class="LlamaForCausalLM",
        dense_class="EftnasLlamaForCausalLM",
        config_fields=LLAMA_CONFIG_FIELDS,
    )
)
