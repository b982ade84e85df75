"""rlhf-lab half of the side-by-side benchmark: the same work as benchmarks/trl_side.py.

Same model shape (MiniGPT default: vocab 260, width 128, 4 layers, 4 heads, ffn 512,
context 256), same batch sizes, response length and PPO epochs, a separate value
model, random-byte data, fp32 (or bf16 autocast with `precision="bf16"`; `compile=True`
adds torch.compile of the blocks, an option measured apart from the equal-work figures).
Each figure is a median over timed steps after
warm-up steps, and comes with the FLOPs of the work, so it can be set against the
machine's measured matmul throughput (the roofline).
"""
from __future__ import annotations

import random
import statistics
import time

import torch

from rlhf_lab import optim
from rlhf_lab.data import PreferencePair
from rlhf_lab.model import GPTConfig, MiniGPT, SamplingConfig, generate
from rlhf_lab.ppo import ActorCritic, PPOConfig, model_reward, ppo_update, score_batch
from rlhf_lab.reward import RewardModel, bradley_terry_loss, pair_rewards
from rlhf_lab.rollout import rollout
from rlhf_lab.run import autocast, compile_if

CONFIG = GPTConfig()


def matmul_params(cfg: GPTConfig = CONFIG) -> int:
    """Weights that take part in a matmul per token: the blocks and the LM head."""
    per_layer = cfg.width * 3 * cfg.width + cfg.width * cfg.width + 2 * cfg.width * cfg.ffn
    return cfg.n_layers * per_layer + cfg.width * cfg.vocab_size


def forward_flops(tokens: int, context: int, cfg: GPTConfig = CONFIG) -> float:
    """2·params per token for the matmuls plus QKᵀ and AV over `context` keys (Kaplan et al. 2020)."""
    return tokens * (2 * matmul_params(cfg) + 4 * cfg.n_layers * context * cfg.width)


def unread_flops(columns: int, cfg: GPTConfig = CONFIG) -> float:
    """FLOPs our forward skips at `columns` columns whose hidden state nobody reads: the last
    block's output projection and MLP there (MiniGPT.trunk's outputs_from). TRL computes them,
    so the equal-work figures count them for TRL, and our achieved FLOP/s leaves them out."""
    return columns * 2 * (cfg.width * cfg.width + 2 * cfg.width * cfg.ffn)


def random_text(rng: random.Random, lo: int, hi: int) -> str:
    return "".join(chr(rng.randrange(97, 123)) for _ in range(rng.randint(lo, hi)))


def sync(device: str) -> None:
    """Wait for queued GPU work, so a timer read measures it (shared with trl_side.py)."""
    if device == "cuda":
        torch.cuda.synchronize()


def _median_rate(step, items: int, steps: int, warmup: int, device: str, precision: str) -> float:
    times = []
    with autocast(torch.device(device), precision):
        for i in range(warmup + steps):
            sync(device)
            start = time.perf_counter()
            step(i)
            sync(device)
            times.append(time.perf_counter() - start)
    return items / statistics.median(times[warmup:])


def reward_pairs_per_sec(device="cpu", batch_size=32, min_len=60, max_len=200, steps=20, warmup=3,
                         seed=0, precision="fp32", compile=False) -> dict:
    """Bradley-Terry training steps on random pairs of 60-200 bytes, pairs / s."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = RewardModel(MiniGPT(CONFIG)).to(device)
    compile_if(compile, model)
    optimizer = optim.adamw([model], 1e-4, 0.0)
    batches = [[PreferencePair("", random_text(rng, min_len, max_len), random_text(rng, min_len, max_len))
                for _ in range(batch_size)] for _ in range(warmup + steps)]

    def step(i):
        chosen, rejected = pair_rewards(model, batches[i], device)
        bradley_terry_loss(chosen, rejected).backward()
        optim.clip_and_step(optimizer, [model], 1.0)
    rate = _median_rate(step, batch_size, steps, warmup, device, precision)
    mean_len = (min_len + max_len) / 2 + 3
    flops = 3 * forward_flops(int(2 * batch_size * mean_len), int(mean_len))
    return {"pairs_per_sec": rate, "gflops_per_sec": flops * rate / batch_size / 1e9}


def ppo_episodes_per_sec(device="cpu", batch_size=32, response_length=32, ppo_epochs=4, iterations=8, warmup=2,
                         seed=0, precision="fp32", compile=False) -> dict:
    """One full PPO iteration (rollout, reward, reference, value, update), episodes / s.

    EOS is never sampled, so every response has exactly `response_length` tokens, like TRL's run
    without a stop token."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    policy, reference = MiniGPT(CONFIG).to(device), MiniGPT(CONFIG).to(device)
    reference.load_state_dict(policy.state_dict())
    value, reward = RewardModel(MiniGPT(CONFIG)).to(device), RewardModel(MiniGPT(CONFIG)).to(device)
    compile_if(compile, policy, reference, value, reward)
    cfg = PPOConfig(batch_size=batch_size, minibatch_size=batch_size, ppo_epochs=ppo_epochs,
                    max_new_tokens=response_length, eos_penalty=0.0)
    optimizer = optim.adamw([policy, value], 1e-5, 0.0)
    sampling = SamplingConfig(max_new_tokens=response_length)
    generator = torch.Generator(device).manual_seed(seed)       # sampling, on the models' device
    shuffle = torch.Generator().manual_seed(seed)                # minibatch order, on the CPU
    reward_fn = model_reward(reward.eval())
    actor_critic = ActorCritic(policy, value)
    with torch.no_grad():
        policy.token_embedding.weight[257] -= 100.0    # no EOS: fixed-length responses

    def step(i):
        prompts = [random_text(rng, 22, 62) for _ in range(batch_size)]
        r = rollout(policy, prompts, sampling, generator)
        batch = score_batch(policy, reference, value, reward_fn, r, cfg, 0.02, 0.0)
        ppo_update(actor_critic, optimizer, batch, cfg, shuffle)
    rate = _median_rate(step, batch_size, iterations, warmup, device, precision)
    prompt = 44                                          # mean prompt bytes (22-62) + BOS + SEP
    total = prompt + response_length
    tokens = batch_size * total
    scored = forward_flops(tokens, total) - unread_flops(batch_size * (prompt - 1))  # one pass over the rollout
    flops = (forward_flops(batch_size * response_length, total)              # sampling
             + 4 * scored                                                    # old, ref, value, reward
             + ppo_epochs * 2 * 3 * scored)                                  # policy + value train
    return {"episodes_per_sec": rate, "gflops_per_sec": flops * rate / batch_size / 1e9}


def sampling_tokens_per_sec(device="cpu", batch_size=32, new_tokens=32, prompt_len=64, repeats=5,
                            seed=0, precision="fp32", compile=False) -> dict:
    """KV-cache sampling of exactly `new_tokens` per row, new tokens / s."""
    torch.manual_seed(seed)
    model = MiniGPT(CONFIG).to(device).eval()
    compile_if(compile, model)
    with torch.no_grad():
        model.token_embedding.weight[257] -= 100.0
    prompts = torch.randint(0, 256, (batch_size, prompt_len), device=device)
    mask = torch.ones_like(prompts, dtype=torch.bool)
    cfg = SamplingConfig(max_new_tokens=new_tokens)
    rate = _median_rate(lambda i: generate(model, prompts, mask, cfg), batch_size * new_tokens, repeats,
                        2 if compile else 1, device, precision)
    # per new token: one forward over keys from prompt_len to prompt_len + new_tokens, new_tokens/2 more on average
    flops_per_token = forward_flops(1, prompt_len + new_tokens // 2)
    return {"new_tokens_per_sec": rate, "gflops_per_sec": flops_per_token * rate / 1e9}
