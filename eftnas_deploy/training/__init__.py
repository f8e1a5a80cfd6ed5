"""Super-network training on HF Trainer (strategies, distillation) and the teacher stage."""

from eftnas_deploy.training.distill import KDConfig, kd_loss
from eftnas_deploy.training.sampling import DISTILL_SOURCES, STRATEGIES, SubnetSampler
from eftnas_deploy.training.setup import collator_for, label_progress, training_arguments, training_batches
from eftnas_deploy.training.teacher import load_teacher, teacher_from_config, train_teacher
from eftnas_deploy.training.trainer import SuperNetTrainer

__all__ = [
    "DISTILL_SOURCES",
    "STRATEGIES",
    "KDConfig",
    "SubnetSampler",
    "SuperNetTrainer",
    "collator_for",
    "kd_loss",
    "label_progress",
    "load_teacher",
    "teacher_from_config",
    "train_teacher",
    "training_arguments",
    "training_batches",
]
