"""Run under `torchrun --nproc_per_node 2`: train a tiny super-network with gloo on CPU, write rank 0's result."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from eftnas_deploy.training import SuperNetTrainer, collator_for, training_arguments
from tests.training_utils import mean_task_loss, small_space, sst2_split, tiny_supernet, tokenizer


def main(out_dir: str) -> None:
    split = sst2_split(rows=32, max_length=16)
    supernet = tiny_supernet()
    space = small_space(supernet)
    before = mean_task_loss(supernet, space.smallest(), split)
    args = training_arguments(
        out_dir, max_steps=6, per_device_train_batch_size=8, learning_rate=3e-3, ddp_backend="gloo", disable_tqdm=True
    )
    trainer = SuperNetTrainer(
        supernet=supernet,
        search_space=space,
        strategy="sandwich",
        args=args,
        train_dataset=split.features,
        data_collator=collator_for(split, tokenizer()),
    )
    trainer.train()
    after = mean_task_loss(supernet, space.smallest(), split)
    weight = supernet.model.bert.encoder.layer[0].attention.self.query.weight.detach()
    gathered = [weight.clone() for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, weight)
    if dist.get_rank() == 0:
        result = {
            "world_size": dist.get_world_size(),
            "global_step": trainer.state.global_step,
            "loss_before": before,
            "loss_after": after,
            "ranks_in_sync": all(bool((g == weight).all()) for g in gathered),
        }
        Path(out_dir, "ddp_result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
