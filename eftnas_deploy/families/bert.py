"""BERT: the reference family (pure data; HF classes named, resolved lazily)."""

from __future__ import annotations

from eftnas_deploy.core.family import AttentionLayout, FamilySpec, FeedForwardLayout, register_family

BERT_CONFIG_FIELDS = {
    "num_layers": "num_hidden_layers",
    "num_heads": "num_attention_heads",
    "hidden_size": "hidden_size",
    "intermediate_size": "intermediate_size",
    "vocab_size": "vocab_size",
    "max_position_embeddings": "max_position_embeddings",
    "type_vocab_size": "type_vocab_size",
}
BERT_ATTENTION = AttentionLayout(
    query="attention.self.query",
    key="attention.self.key",
    value="attention.self.value",
    output="attention.output.dense",
    layer_norm="attention.output.LayerNorm",
    attention_dropout="attention.self.dropout",
    output_dropout="attention.output.dropout",
    block=("attention",),
    skip=(("attention", "pass_tuple"),),
    size_attrs=(("attention.self.num_attention_heads", "units"), ("attention.self.all_head_size", "width")),
)
BERT_FFN = FeedForwardLayout(
    up="intermediate.dense",
    activation="intermediate.intermediate_act_fn",
    down="output.dense",
    dropout="output.dropout",
    layer_norm="output.LayerNorm",
    block=("intermediate", "output"),
    skip=(("intermediate", "pass"), ("output", "residual")),
)

BERT = register_family(
    FamilySpec(
        model_type="bert",
        config_class="BertConfig",
        model_classes={
            "text-classification": "BertForSequenceClassification",
            "question-answering": "BertForQuestionAnswering",
        },
        dense_classes={
            "text-classification": "EftnasBertForSequenceClassification",
            "question-answering": "EftnasBertForQuestionAnswering",
        },
        layers="encoder.layer",
        config_fields=BERT_CONFIG_FIELDS,
        attention=BERT_ATTENTION,
        ffn=BERT_FFN,
        input_names=("input_ids", "attention_mask", "token_type_ids"),
    )
)
