"""Run by test_distributed.py under `torchrun --nproc_per_node 2`: every stage on two ranks.

Each rank trains on its own shard of the data, so the ranks' weights stay equal only if
DistributedDataParallel averages the gradients. The worker captures every module a stage
hands to distributed.wrap and, after the stage, checks that it changed and that every
rank holds the same weights.
"""
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from rlhf_lab import distributed, ppo, reward, sft

wrapped: list[tuple[str, torch.nn.Module, dict]] = []
plain_wrap = distributed.wrap


def capturing_wrap(module):
    wrapped.append((stage, module, {k: v.detach().clone() for k, v in module.state_dict().items()}))
    return plain_wrap(module)


def check_stage(name: str) -> None:
    modules = [(m, before) for s, m, before in wrapped if s == name]
    assert modules, f"{name}: nothing was wrapped for DistributedDataParallel"
    for module, before in modules:
        after = module.state_dict()
        assert any(not torch.equal(after[k], before[k]) for k in after), f"{name}: weights did not change"
        for key, value in after.items():
            rank0 = value.detach().clone()
            dist.broadcast(rank0, 0)
            assert torch.equal(value, rank0), f"{name}: {key} differs between ranks"


if __name__ == "__main__":
    out = Path(sys.argv[1])
    distributed.wrap = capturing_wrap
    model = dict(width=32, n_layers=2, n_heads=2, ffn=64, device="cpu")
    stage = "sft"
    sft.train_sft(sft.SFTConfig(out=str(out / "sft"), steps=4, examples=64, batch_size=4, eval_every=2,
                                eval_samples=4, **model))
    check_stage("sft")
    stage = "rm"
    # 5 ranked prompts: shards of 3 and 2, and still one step count on both ranks
    reward.train_reward(reward.RewardConfig(out=str(out / "rm"), sft=str(out / "sft"), pairs=105, batch_size=1,
                                            epochs=1, norm_samples=4, heldout_pairs=21, device="cpu"))
    check_stage("rm")
    stage = "ppo"   # with PPO-ptx: its LM loss rides in the one DDP forward per backward
    ppo.train_ppo(ppo.PPOConfig(out=str(out / "ppo"), sft=str(out / "sft"), rm=str(out / "rm"), iterations=2,
                                batch_size=4, minibatch_size=2, max_new_tokens=8, ptx_coef=1.0, device="cpu"))
    check_stage("ppo")
    stage = "rloo"   # critic-free: the policy alone is wrapped
    ppo.train_ppo(ppo.PPOConfig(out=str(out / "rloo"), sft=str(out / "sft"), rm=str(out / "rm"), iterations=2,
                                batch_size=4, minibatch_size=2, max_new_tokens=8, advantage="rloo",
                                samples_per_prompt=2, device="cpu"))
    check_stage("rloo")
    print(f"rank {distributed.rank()}: sft, rm, ppo and rloo weights equal on all ranks", flush=True)
    distributed.close()
