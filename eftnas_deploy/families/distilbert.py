"""DistilBERT: `transformer.layer` blocks with q/k/v/out_lin and ffn.lin1/lin2; no token_type_ids.

Its attention block adds no dropout after out_lin, and the block's residual LayerNorms sit on the layer
itself (`sa_layer_norm`, `output_layer_norm`), so a skipped block also replaces those (with identities) and
its attention/FFN module with one that returns zeros: LayerNorm-free `0 + x` is exactly x.
"""

from __future__ import annotations

from eftnas_deploy.core.family import AttentionLayout, FamilySpec, FeedForwardLayout, register_family

DISTILBERT = register_family(
    FamilySpec(
        model_type="distilbert",
        config_class="DistilBertConfig",
        model_classes={
            "text-classification": "DistilBertForSequenceClassification",
            "question-answering": "DistilBertForQuestionAnswering",
        },
        dense_classes={
            "text-classification": "EftnasDistilBertForSequenceClassification",
            "question-answering": "EftnasDistilBertForQuestionAnswering",
        },
        layers="transformer.layer",
        config_fields={
            "num_layers": "n_layers",
            "num_heads": "n_heads",
            "hidden_size": "dim",
            "intermediate_size": "hidden_dim",
            "vocab_size": "vocab_size",
            "max_position_embeddings": "max_position_embeddings",
            "type_vocab_size": None,
        },
        attention=AttentionLayout(
            query="attention.q_lin",
            key="attention.k_lin",
            value="attention.v_lin",
            output="attention.out_lin",
            layer_norm="sa_layer_norm",
            attention_dropout="attention.dropout",
            output_dropout=None,
            block=("attention", "sa_layer_norm"),
            skip=(("attention", "zero_tuple"), ("sa_layer_norm", "identity")),
            size_attrs=(("attention.n_heads", "units"), ("attention.dim", "width")),
        ),
        ffn=FeedForwardLayout(
            up="ffn.lin1",
            activation="ffn.activation",
            down="ffn.lin2",
            dropout="ffn.dropout",
            layer_norm="output_layer_norm",
            block=("ffn", "output_layer_norm"),
            skip=(("ffn", "zero"), ("output_layer_norm", "identity")),
        ),
        input_names=("input_ids", "attention_mask"),
    )
)
