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

from rlhf_lab import optim, tokenizer
from rlhf_lab.data import PreferencePair
from rlhf_lab.model import GPTConfig, MiniGPT, SamplingConfig, generate
from rlhf_lab.ppo import ActorCritic, PPOConfig, model_reward, ppo_update, score_batch, trained_modules
from rlhf_lab.reward import RewardModel, bradley_terry_loss, pair_rewards
from rlhf_lab.rollout import rollout
from rlhf_lab.run import autocast, compile_if

CONFIG = GPTConfig()


def block_params(cfg: GPTConfig = CONFIG) -> int:
    """Weights that take part in a matmul per token in the transformer blocks."""
    return cfg.n_layers * (cfg.width * 3 * cfg.width + cfg.width * cfg.width + 2 * cfg.width * cfg.ffn)


def head_flops(tokens: int, cfg: GPTConfig = CONFIG) -> float:
    """The LM head at `tokens` columns (a scalar reward or value head is negligible)."""
    return tokens * 2 * cfg.width * cfg.vocab_size


def forward_flops(tokens: int, context: int, cfg: GPTConfig = CONFIG) -> float:
    """The blocks: 2·params per token for the matmuls plus QKᵀ and AV over `context` keys
    (Kaplan et al. 2020). Heads are counted apart, at the columns they run on."""
    return tokens * (2 * block_params(cfg) + 4 * cfg.n_layers * context * cfg.width)


def unread_flops(columns: int, cfg: GPTConfig = CONFIG) -> float:
    """FLOPs our forward skips at `columns` columns whose hidden state nobody reads: the last
    block's output projection and MLP there (MiniGPT.trunk's outputs_from). TRL computes them,
    so the equal-work figures count them for TRL, and our achieved FLOP/s leaves them out."""
    return columns * 2 * (cfg.width * cfg.width + 2 * cfg.width * cfg.ffn)


def rollout_pass_flops(batch: int, prompt: int, response: int, lm_head: bool) -> float:
    """One forward over a rollout read from its last prompt column on: every column's keys and
    values, the last block's output projection and MLP from that column, and the LM head
    (policy and reference log-probs) at the `response` columns that predict a response token."""
    total = prompt + response
    blocks = forward_flops(batch * total, total) - unread_flops(batch * (prompt - 1))
    return blocks + (head_flops(batch * response) if lm_head else 0.0)


def sampling_flops(batch: int, prompt: int, new_tokens: int) -> float:
    """generate: a prefill over the prompts read at their last column, then new_tokens - 1
    one-token steps over a growing cache; the LM head once per new token."""
    prefill = forward_flops(batch * prompt, prompt) - unread_flops(batch * (prompt - 1))
    steps = forward_flops(batch * (new_tokens - 1), prompt + new_tokens // 2)
    return prefill + steps + head_flops(batch * new_tokens)


def never_eos(model: MiniGPT) -> MiniGPT:
    """Responses of exactly the asked length, as TRL's PPO without a stop token and HF generate
    with min_new_tokens give: the EOS logit is pinned far below the rest (finite, so the
    entropy's p·log p stays 0 there)."""
    head = model.lm_head

    def lm_head(hidden: torch.Tensor) -> torch.Tensor:
        return head(hidden).index_fill(-1, torch.tensor([tokenizer.EOS], device=hidden.device), -1e4)
    model.lm_head = lm_head
    return model


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
        chosen, rejected = pair_rewards(model, model.tokenizer, batches[i], device)
        bradley_terry_loss(chosen, rejected).backward()
        optim.clip_and_step(optimizer, [model], 1.0)
    rate = _median_rate(step, batch_size, steps, warmup, device, precision)
    mean_len = (min_len + max_len) / 2 + 3
    flops = 3 * forward_flops(int(2 * batch_size * mean_len), int(mean_len))    # scalar head: no LM head
    return {"pairs_per_sec": rate, "gflops_per_sec": flops * rate / batch_size / 1e9}


def ppo_episodes_per_sec(device="cpu", batch_size=32, response_length=32, ppo_epochs=4, iterations=8, warmup=2,
                         seed=0, precision="fp32", compile=False, critic=True) -> dict:
    """One full PPO iteration (rollout, reward, reference, value, update), episodes / s.

    EOS is never sampled, so every response has exactly `response_length` tokens, like TRL's run
    without a stop token. critic=False: the same iteration with RLOO's advantages over 4
    answers per prompt and no value network (less work than TRL's PPO, reported apart)."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    policy, reference = MiniGPT(CONFIG).to(device), MiniGPT(CONFIG).to(device)
    reference.load_state_dict(policy.state_dict())
    value = RewardModel(MiniGPT(CONFIG)).to(device) if critic else None
    reward = RewardModel(MiniGPT(CONFIG)).to(device)
    compile_if(compile, *(m for m in (policy, reference, value, reward) if m is not None))
    per_prompt = 1 if critic else 4
    cfg = PPOConfig(batch_size=batch_size, minibatch_size=batch_size, ppo_epochs=ppo_epochs,
                    max_new_tokens=response_length, eos_penalty=0.0, advantage="gae" if critic else "rloo",
                    samples_per_prompt=per_prompt)
    optimizer = optim.adamw(list(trained_modules(policy, value).values()), 1e-5, 0.0)
    sampling = SamplingConfig(max_new_tokens=response_length)
    generator = torch.Generator(device).manual_seed(seed)       # sampling, on the models' device
    shuffle = torch.Generator().manual_seed(seed)                # minibatch order, on the CPU
    reward_fn = model_reward(reward.eval())
    actor_critic = ActorCritic(policy, value)
    never_eos(policy)

    def step(i):
        drawn = [random_text(rng, 22, 62) for _ in range(batch_size // per_prompt)]
        prompts = [p for p in drawn for _ in range(per_prompt)]
        r = rollout(policy, prompts, sampling, generator)
        batch = score_batch(reference, value, reward_fn, r, cfg, 0.02, 0.0)
        ppo_update(actor_critic, optimizer, batch, cfg, shuffle)
    rate = _median_rate(step, batch_size, iterations, warmup, device, precision)
    prompt = 44                                          # mean prompt bytes (22-62) + BOS + SEP
    policy_pass, critic_pass = (rollout_pass_flops(batch_size, prompt, response_length, lm_head)
                                for lm_head in (True, False))
    value_passes = 1 + ppo_epochs * 3 if critic else 0                      # value; its training
    flops = (sampling_flops(batch_size, prompt, response_length)
             + policy_pass + critic_pass                     # reference; reward (old log-probs: the sampler's)
             + ppo_epochs * 3 * policy_pass + value_passes * critic_pass)    # policy train
    return {"episodes_per_sec": rate, "gflops_per_sec": flops * rate / batch_size / 1e9}


def sampling_tokens_per_sec(device="cpu", batch_size=32, new_tokens=32, prompt_len=64, repeats=5,
                            seed=0, precision="fp32", compile=False) -> dict:
    """KV-cache sampling of exactly `new_tokens` per row, new tokens / s."""
    torch.manual_seed(seed)
    model = MiniGPT(CONFIG).to(device).eval()
    compile_if(compile, model)
    never_eos(model)
    prompts = torch.randint(0, 256, (batch_size, prompt_len), device=device)
    mask = torch.ones_like(prompts, dtype=torch.bool)
    cfg = SamplingConfig(max_new_tokens=new_tokens)
    rate = _median_rate(lambda i: generate(model, prompts, mask, cfg), batch_size * new_tokens, repeats,
                        2 if compile else 1, device, precision)
    flops_per_token = sampling_flops(batch_size, prompt_len, new_tokens) / (batch_size * new_tokens)
    return {"new_tokens_per_sec": rate, "gflops_per_sec": flops_per_token * rate / 1e9}
