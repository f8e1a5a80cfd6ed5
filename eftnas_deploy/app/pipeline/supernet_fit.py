"""Super-network training and its held-out corner scores: shared by full-weight and LoRA super-networks."""

from __future__ import annotations

import shutil
import time
from typing import Any

from eftnas_deploy.app.pipeline.config import SupernetConfig
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.evaluation import evaluate
from eftnas_deploy.training import KDConfig, SuperNetTrainer, collator_for, label_progress


def fit_supernet(
    net: Any,
    search_space: SearchSpace,
    cfg: SupernetConfig,
    *,
    teacher: Any,
    kd: KDConfig | None,
    args: Any,
    train: Any,
    tokenizer: Any,
    held_out: Any,
    resume_from: str | None,
    budget: Any = None,
) -> tuple[KDConfig, float, dict[str, Any]]:
    """Train `net` (SuperNetwork or LoraSuperNetwork) over `search_space`; (KD used, wall s, corner scores).

    The Trainer's checkpoints (`args.output_dir`) are removed once training completes.
    """
    kd = kd or KDConfig(rkd_weight=cfg.rkd_weight, hidden_weight=cfg.hidden_kd_weight)
    trainer = SuperNetTrainer(
        supernet=net, search_space=search_space, strategy=cfg.strategy, num_random=cfg.num_random,
        teacher=teacher, kd=kd, distill_from=cfg.distill_from,
        growth=cfg.growth, growth_stages=cfg.growth_stages, budget=budget, args=args,
        train_dataset=train.features, data_collator=collator_for(train, tokenizer), processing_class=tokenizer,
    )  # fmt: skip
    label_progress(trainer, "super-network training")
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from)
    wall = round(time.perf_counter() - start, 1)
    shutil.rmtree(args.output_dir, ignore_errors=True)
    corners = {"largest": search_space.largest(), "middle": search_space.middle(), "smallest": search_space.smallest()}
    return trainer.kd, wall, {name: evaluate(net, s, held_out) for name, s in corners.items()}
