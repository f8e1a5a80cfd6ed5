"""RoBERTa: BERT's layout, its own classes, and two reserved positions (padding_idx + 1)."""

from __future__ import annotations

import dataclasses

from eftnas_deploy.core.family import register_family
from eftnas_deploy.families.bert import BERT

ROBERTA = register_family(
    dataclasses.replace(
        BERT,
        model_type="roberta",
        config_class="RobertaConfig",
        model_classes={
            "text-classification": "RobertaForSequenceClassification",
            "question-answering": "RobertaForQuestionAnswering",
        },
        dense_classes={
            "text-classification": "EftnasRobertaForSequenceClassification",
            "question-answering": "EftnasRobertaForQuestionAnswering",
        },
        position_offset=2,
        onnx_model_type="roberta",
    )
)
