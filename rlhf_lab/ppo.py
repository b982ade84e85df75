"""Stage 3, PPO: optimise the policy against the reward model on a KL leash.

As in Ziegler et al. 2019 and InstructGPT (Ouyang et al. 2022): the policy starts
from SFT, a frozen SFT copy is the reference, and each response token earns
-β·(log π - log π_ref), with the reward model's score added at the last token.
Advantages by GAE (Schulman et al. 2016), the clipped surrogate (Schulman et al.
2017), a clipped value loss, several epochs over minibatches. Deviations:
 1. The value model is a separate network initialised from the reward model, as
    InstructGPT does: a value head on the policy's trunk would be cheaper, but its
    loss would pull on the very features the policy acts with.
 2. InstructGPT's pretraining-mix term (PPO-ptx) is an option, off by default (D20): the
    world has no pretraining corpus, so the SFT model's own demonstrations stand in for it.
 3. A response that never emits EOS gets its score lowered by `eos_penalty`
    (the TRL recipe), so the policy cannot escape the reward by rambling.
 4. PPO's entropy term (Schulman et al. 2017 eq. 9) is an option, off by default (D21);
    `rlhf pipeline` sets it negative, to sharpen the policy against temperature-1 slips.
Implementation details are numbered D1..D21 and listed in docs/ppo.md.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace
from functools import partial
from typing import Callable

import torch
from torch import Tensor, nn

from rlhf_lab import data, distributed, evaluate, optim, sft
from rlhf_lab.model import CausalLM, SamplingConfig, token_logprobs
from rlhf_lab.reward import RewardModel, load_reward_model
from rlhf_lab.rollout import (Rollout, chunk_budget, ended_flags, map_length_chunks, response_texts, rollout,
                              sample_rollouts)
from rlhf_lab.run import (
    PRECISIONS, SHIPPED, ConfigError, Run, autocast, check_choice, check_exists, check_non_negative, check_numbers,
    check_positive, check_range, check_unused, compile_if, load_model, pick_device, progress, resume_step,
    save_model, save_train_state, seed_everything, status, stream_seed, tensor_metadata, write_json)
from rlhf_lab.tokenizer import Tokenizer
from rlhf_lab.world import World, WorldConfig

ADVANTAGES = ("gae", "baseline", "rloo")
REWARDS = ("model", "gold")
GOLD_NORM_SAMPLES = 256   # SFT answers that scale the gold reward, as `rlhf train-rm --norm-samples` does
RewardFn = Callable[[Rollout], Tensor]   # a rollout of B responses → (B,) scores


CRITIC_OPTIONS = ("vf_coef", "value_clip", "gamma", "lam")   # read by --advantage gae alone (its critic and GAE)


@dataclass
class PPOConfig:
    out: str = "runs/ppo"            # run directory
    sft: str = SHIPPED               # SFT run directory: policy init and frozen reference
    rm: str = "runs/rm"              # `rlhf train-rm` run directory (reward and value init)
    reward: str = "model"            # "model": the --rm reward model | "gold": the world's judge, an oracle (D18)
    world_seed: int = 0              # the world whose training prompts are used
    prompts: str = ""                # JSONL of prompts: a "prompt" key (world export's prompts_train.jsonl), or any
                                     # preference row's prompt (HH full texts: their shared prefix); empty → the
                                     # world's training prompts, the only ones gold can judge
    on_invalid: str = "error"        # bad --prompts / --ptx-data rows: "error" | "skip" (counted, reported)
    overflow: str = "error"          # --prompts rows too long for the context and an answer (--ptx-data rows:
                                     # too long for the context): "error" | "skip" | "truncate" (cuts the
                                     # prompt's oldest bytes)
    iterations: int = 40             # rollout + update rounds
    batch_size: int = 64             # episodes (prompt, response) per iteration (per rank under torchrun)
    minibatch_size: int = 32         # episodes per gradient step
    ppo_epochs: int = 4              # passes over each batch (InstructGPT: 4)
    lr: float = 1e-4                 # AdamW lr; InstructGPT's 1.5e-5 is for 1.3B-175B models
    kl_coef: float = 0.1             # β in r - β·KL (InstructGPT 0.02; why 0.1 here: docs/ppo.md)
    kl_target: float | None = None   # set → adaptive β aiming at this KL per response (Ziegler et al.)
    kl_horizon: int = 10000          # episodes over which the adaptive β moves (Ziegler et al.)
    clip_eps: float = 0.2            # PPO ε (Schulman et al. 2017)
    value_clip: float = 0.2          # D7: value predictions move at most this far per batch
    vf_coef: float = 0.1             # weight of the value loss (lm-human-preferences)
    gamma: float = 1.0               # discount (lm-human-preferences)
    lam: float = 0.95                # GAE λ (lm-human-preferences)
    advantage: str = "gae"           # "gae" (critic) | critic-free: "baseline" (textbook) | "rloo" (leave-one-out)
    samples_per_prompt: int = 1      # answers to each drawn prompt per batch (rloo: k ≥ 2 of them)
    baseline_decay: float = 0.9      # running-mean decay of the "baseline" estimator
    whiten_advantages: bool = True   # D5: advantages to mean 0, std 1 per batch
    eos_penalty: float = 1.0         # D3: subtracted from the score of a response without EOS
    ptx_coef: float = 0.0            # D20, PPO-ptx (InstructGPT eq. 2): γ times the LM loss on demonstrations
                                     # joins each update, against the alignment tax; 0: plain PPO
    ptx_data: str = ""               # PPO-ptx's demonstrations: SFT JSONL, or a preference file (its chosen
                                     # answers); empty → the world's SFT mix, which SFT trained on
    entropy_coef: float = 0.0        # D21: c2 of PPO's eq. 9, times the policy's mean entropy per token, added to
                                     # the objective: > 0 a bonus (exploration), < 0 a penalty that sharpens the
                                     # policy (rlhf pipeline: -1, against temperature-1 slips; docs/ppo.md)
    max_new_tokens: int = 192        # response length limit, bytes
    grad_clip: float = 1.0           # global gradient-norm clip
    eval_every: int = 10             # iterations between progress lines and checkpoints (a kill loses fewer)
    seed: int = 0                    # prompt order, sampling, init
    device: str = "auto"             # "auto" | "cpu" | "cuda"
    precision: str = "fp32"          # "fp32" | "bf16" autocast (for wide models; slower at width 128)
    compile: bool = False            # torch.compile the blocks (slower at width 128, docs/benchmarks.md)
    resume: bool = True              # continue from out/train_state.safetensors if present

    def validate(self) -> None:
        check_numbers(self)          # --entropy-coef too, which may take either sign
        check_choice("advantage", self.advantage, ADVANTAGES)
        check_choice("reward", self.reward, REWARDS)
        check_choice("precision", self.precision, PRECISIONS)
        data.check_read_options(self, "prompts", "ptx_data")
        if self.prompts and self.reward == "gold":
            raise ConfigError("--reward gold judges the world's own prompts; a --prompts file needs --reward model")
        check_unused(self, ("rm",), self.reward == "gold", "name", "a reward model, which --reward gold does not read")
        check_positive(self, "iterations", "batch_size", "minibatch_size", "ppo_epochs", "lr", "clip_eps",
                       "max_new_tokens", "eval_every", "samples_per_prompt", "grad_clip", "value_clip")
        check_non_negative(self, "vf_coef", "eos_penalty", "ptx_coef")
        if self.ptx_data and not self.ptx_coef:
            raise ConfigError("--ptx-data is read only with --ptx-coef above 0")
        if self.batch_size % self.minibatch_size:
            raise ConfigError("--batch-size must be a multiple of --minibatch-size")
        if self.batch_size % self.samples_per_prompt:
            raise ConfigError("--batch-size must be a multiple of --samples-per-prompt")
        if self.advantage == "rloo" and self.samples_per_prompt < 2:
            raise ConfigError("--advantage rloo compares a prompt's answers: --samples-per-prompt must be ≥ 2")
        if self.clip_eps >= 1:   # 1 - ε ≤ 0 would leave the ratio unclipped from below: not PPO's surrogate
            raise ConfigError(f"--clip-eps must be below 1; got {self.clip_eps}")
        check_range(self, "kl_coef", 0.0)     # β < 0 would pay the policy to leave the reference
        check_range(self, "gamma", 0.0, 1.0)
        check_range(self, "lam", 0.0, 1.0)
        check_range(self, "baseline_decay", 0.0, 1.0)
        check_unused(self, CRITIC_OPTIONS, self.advantage != "gae", "tune",
                     f"the critic and GAE; --advantage {self.advantage} has neither")
        check_unused(self, ("baseline_decay",), self.advantage != "baseline", "pace",
                     f"the running baseline of --advantage baseline; --advantage {self.advantage} subtracts none")
        check_unused(self, ("kl_horizon",), self.kl_target is None, "pace",
                     "the adaptive β of --kl-target; without --kl-target β is fixed")
        if self.kl_target is not None:
            check_positive(self, "kl_target", "kl_horizon")
            if not self.kl_coef:   # D8 scales β by a factor: from 0 it would never move
                raise ConfigError("--kl-target adapts β by multiplying it: start it above 0 with --kl-coef")

    def sampling(self) -> SamplingConfig:
        """How PPO samples its rollouts (D11: temperature 1, the log-probs' own π)."""
        return SamplingConfig(max_new_tokens=self.max_new_tokens)


# ------------------------------------------------------------------ the math

def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True) -> Tensor:
    """D5: x over masked entries to mean 0 and std 1 (reward scale is arbitrary); with
    shift_mean False (D13) only scaled, to root mean square 1: the same where the mean is small
    against the spread, and bounded where every answer of a batch earns the same, which divided
    by the spread alone would be scaled by about 1e4."""
    mean = masked_mean(x, mask)
    centred = x - mean if shift_mean else x
    return centred * torch.rsqrt(masked_mean(centred ** 2, mask) + 1e-8) * mask


def shaped_rewards(scores: Tensor, logprobs: Tensor, ref_logprobs: Tensor, response_mask: Tensor,
                   kl_coef: float) -> tuple[Tensor, Tensor]:
    """D4: per-token reward -β·(log π - log π_ref), plus the score on the last token.

    scores (B,); the rest (B, N). Returns rewards (B, N) and the k1 KL (B, N).
    """
    kl = (logprobs - ref_logprobs) * response_mask                          # (B, N)
    rewards = -kl_coef * kl
    last = response_mask.long().cumsum(-1).argmax(-1)                       # (B,) last response token
    rewards[torch.arange(len(scores)), last] += scores
    return rewards, kl


def gae(rewards: Tensor, values: Tensor, response_mask: Tensor, gamma: float, lam: float) -> Tensor:
    """Generalised advantage estimation (Schulman et al. 2016), (B, N) → (B, N).

    Values past the end of a response are 0, so the last real token's target is
    its own reward.
    """
    values = values * response_mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        next_value = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    return advantages * response_mask


def reward_baseline_advantages(rewards: Tensor, baseline: float, response_mask: Tensor) -> Tensor:
    """The textbook's estimator: every token of a response gets (its total reward - baseline)."""
    return (rewards.sum(-1, keepdim=True) - baseline) * response_mask     # (B, N)


def leave_one_out_advantages(rewards: Tensor, response_mask: Tensor, group_size: int) -> Tensor:
    """RLOO (Kool et al. 2019; Ahmadian et al. 2024): each response's total reward minus the
    mean total of the other answers to its prompt, on every token. Rows come in groups of
    group_size answers to one prompt. A prompt's own answers are the baseline, so what the
    advantage credits is what set one answer above its siblings (a fact right, not the
    prompt being easy), with no critic to learn."""
    totals = rewards.sum(-1).view(-1, group_size)                           # (B / k, k)
    others = (totals.sum(-1, keepdim=True) - totals) / (group_size - 1)     # (B / k, k)
    return (totals - others).reshape(-1, 1) * response_mask                 # (B, N)


def ppo_policy_loss(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, response_mask: Tensor,
                    clip_eps: float) -> tuple[Tensor, Tensor]:
    """Clipped surrogate, Schulman et al. 2017 eq. 7, mean over response tokens.
    Returns the loss and the clip fraction."""
    ratio = torch.exp(logprobs - old_logprobs)                              # (B, N)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip_eps, 1 + clip_eps)
    clipfrac = masked_mean((clipped > unclipped).float(), response_mask)
    return masked_mean(torch.maximum(unclipped, clipped), response_mask), clipfrac


def value_loss(values: Tensor, old_values: Tensor, returns: Tensor, response_mask: Tensor,
               value_clip: float) -> Tensor:
    """D7: ½ max((V - R)², (V_clipped - R)²), V_clipped within value_clip of the old value."""
    clipped = old_values + (values - old_values).clamp(-value_clip, value_clip)
    return 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), response_mask)


class FixedKL:
    """β stays put."""

    def __init__(self, value: float):
        self.value = value

    def update(self, kl: float, episodes: int) -> None:
        pass


class AdaptiveKL(FixedKL):
    """D8: β grows when KL is above target and shrinks below it (Ziegler et al. 2019, eq. 2)."""

    def __init__(self, value: float, target: float, horizon: int):
        super().__init__(value)
        self.target, self.horizon = target, horizon

    def update(self, kl: float, episodes: int) -> None:
        error = max(-0.2, min(0.2, kl / self.target - 1))
        self.value *= 1 + error * episodes / self.horizon


def explained_variance(values: Tensor, returns: Tensor, mask: Tensor) -> float:
    """1 - Var(R - V) / Var(R): 1 is a perfect critic, ≤ 0 is no better than a constant."""
    var_returns = masked_mean((returns - masked_mean(returns, mask)) ** 2, mask)
    residual = returns - values
    var_residual = masked_mean((residual - masked_mean(residual, mask)) ** 2, mask)
    return (1 - var_residual / var_returns.clamp(min=1e-8)).item()


# ------------------------------------------------------------------ one iteration

@dataclass
class Batch:
    """A rollout with everything PPO needs, computed once before the update (D1).
    Per-token tensors are (B, N) over response positions; scores is (B,). old_values and
    returns are None without a critic."""
    rollout: Rollout
    old_logprobs: Tensor
    ref_logprobs: Tensor
    old_values: Tensor | None
    scores: Tensor
    kl: Tensor
    entropy: Tensor
    advantages: Tensor
    returns: Tensor | None


def by_length(fn, r: Rollout, chunk_tokens: int | None = None) -> tuple[Tensor, ...]:
    """D14: fn(tokens, mask, start) → tensors over the rows (b,) or their response columns
    (b, end - start), run on rows of similar length (rollout.length_chunks) and put back
    in batch order: (B,) or (B, N), zero on the cut columns, which are padding."""
    def window(rows: Tensor, first: int, end: int) -> tuple[Tensor, ...]:
        return fn(r.tokens[rows, first:end], r.mask[rows, first:end], r.prompt_len - first)
    return map_length_chunks(window, r.mask, chunk_tokens or chunk_budget(r.tokens.device), r.response_mask.shape[1])


def response_values(value_model: RewardModel, tokens: Tensor, mask: Tensor, start: int) -> tuple[Tensor]:
    """V(s_t) for each response token t ≥ start: the head at the column before it, (B, T - start)."""
    return (value_model.token_scores(tokens, mask, start - 1)[:, :-1],)


def model_reward(reward_model) -> RewardFn:
    """The reward model's normalised score of each rollout response, every one ending in EOS."""
    def score_rows(tokens: Tensor, mask: Tensor, start: int) -> tuple[Tensor]:
        return (reward_model.score(tokens, mask, torch.full((len(tokens),), start, device=tokens.device)),)
    return lambda r: by_length(score_rows, with_eos(r))[0]


def with_eos(r: Rollout) -> Rollout:
    """r with EOS after each response cut at the length limit: the reward model read every
    answer in training, normalisation and evaluation so (reward.encode_responses), and pools
    at that EOS. generate leaves the context one column for it. The cut itself costs the
    score eos_penalty (D3). The EOS goes right after each cut answer, not after the batch's
    longest one: the likelihood read-out scores it from the column before it, which must be
    the answer's last token, not padding (rows differ in their limit where long prompts
    leave less room)."""
    cut = (~r.ended).nonzero().squeeze(-1)                                          # (c,) rows cut off
    end = r.response_mask.sum(-1)[cut]                                              # (c,) their lengths
    grow = lambda t, fill: torch.cat([t, torch.full_like(t[:, :1], fill)], 1)      # one more column
    tokens, mask, response_mask = grow(r.tokens, r.eos), grow(r.mask, False), grow(r.response_mask, False)
    tokens[cut, r.prompt_len + end] = r.eos
    mask[cut, r.prompt_len + end] = True
    response_mask[cut, end] = True
    return replace(r, tokens=tokens, mask=mask, response_mask=response_mask,
                   logprobs=None, entropy=None)            # the appended EOS was not sampled


@torch.no_grad()
def score_batch(reference: CausalLM, value_model: RewardModel | None, reward_fn: RewardFn, r: Rollout,
                cfg: PPOConfig, kl_coef: float, baseline: float) -> Batch:
    """Everything the update needs of a rollout sampled by the current policy, computed once (D1)."""
    old_logprobs, entropy = r.logprobs, r.entropy                     # (B, N): the sampler's, D1
    ref_logprobs, _ = by_length(partial(token_logprobs, reference), r)
    values = (None if value_model is None else                                         # critic-free
              by_length(partial(response_values, value_model), r)[0] * r.response_mask)  # (B, N)
    scores = reward_fn(r).float() - cfg.eos_penalty * (~r.ended).float()               # D3, (B,)
    rewards, kl = shaped_rewards(scores, old_logprobs, ref_logprobs, r.response_mask, kl_coef)
    if cfg.advantage == "gae":
        advantages = gae(rewards, values, r.response_mask, cfg.gamma, cfg.lam)
    elif cfg.advantage == "rloo":
        advantages = leave_one_out_advantages(rewards, r.response_mask, cfg.samples_per_prompt)
    else:
        advantages = reward_baseline_advantages(rewards, baseline, r.response_mask)
    returns = None if values is None else advantages + values                           # D6: before whitening
    if cfg.whiten_advantages:   # D13: the running baseline is that estimator's centre; the batch mean would cancel it
        advantages = masked_whiten(advantages, r.response_mask, shift_mean=cfg.advantage != "baseline")
    return Batch(r, old_logprobs, ref_logprobs, values, scores, kl, entropy, advantages, returns)


class ActorCritic(nn.Module):
    """The two networks PPO trains, as one module: its forward gives the policy's log-probs
    and entropies and the critic's values on a rollout's response tokens, (B, N) each. One module with
    one forward per backward is what DistributedDataParallel needs to average both
    networks' gradients under torchrun (distributed.wrap), PPO-ptx's LM loss included.
    Without a critic (the critic-free estimators) values is None; without demonstrations
    the LM loss is None."""

    def __init__(self, policy: CausalLM, value_model: RewardModel | None):
        super().__init__()
        self.policy, self.value_model = policy, value_model

    def forward(self, r: Rollout, demonstrations: tuple[Tensor, Tensor, Tensor] | None = None
                ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        logprobs, entropy = by_length(partial(token_logprobs, self.policy), r)          # (B, N) each
        values = None if self.value_model is None else \
            by_length(partial(response_values, self.value_model), r)[0]                  # (B, N)
        ptx_loss = None if demonstrations is None else demonstration_loss(self.policy, *demonstrations)
        return logprobs, entropy, values, ptx_loss


@dataclass
class Demonstrations:
    """D20: PPO-ptx's demonstrations, encoded by the policy's tokenizer as (tokens, first
    answer index) rows."""
    tokenizer: Tokenizer
    encoded: list[tuple[list[int], int]]

    def draw(self, size: int, generator: torch.Generator, device) -> tuple[Tensor, Tensor, Tensor]:
        """`size` of them at random: right-padded tokens and mask (B, T), and loss_mask (B, T),
        True on the answer and its EOS (the tokens SFT's loss reads)."""
        drawn = [self.encoded[i] for i in torch.randint(len(self.encoded), (size,), generator=generator).tolist()]
        return tuple(t.to(device) for t in self.tokenizer.right_pad_examples(drawn))


def demonstration_loss(policy: CausalLM, tokens: Tensor, mask: Tensor, loss_mask: Tensor) -> Tensor:
    """D20: mean next-token cross-entropy of the policy on the answers of demonstrations, the
    SFT loss (sft.response_loss), through the model protocol so an HF policy takes it too."""
    logprobs, _ = token_logprobs(policy, tokens, mask, 1)                                 # (B, T-1)
    return -masked_mean(logprobs, loss_mask[:, 1:])


def ppo_update(actor_critic: ActorCritic | nn.Module, optimizer, batch: Batch, cfg: PPOConfig,
               generator: torch.Generator, demonstrations: Demonstrations | None = None,
               where: str = "a PPO update") -> dict[str, float]:
    """cfg.ppo_epochs passes over the batch in shuffled minibatches (D2).
    actor_critic: an ActorCritic, or one wrapped by distributed.wrap. demonstrations: PPO-ptx's
    (D20), as many drawn per minibatch as it has episodes; None: plain PPO. where: what a
    diverged step's error names ("ppo iteration 12")."""
    r, stats = batch.rollout, []
    for _ in range(cfg.ppo_epochs):
        for mb in torch.randperm(len(r.prompts), generator=generator).split(cfg.minibatch_size):
            mb = mb.to(r.tokens.device)
            sub = Rollout([], [], r.tokens[mb], r.mask[mb], r.response_mask[mb], r.prompt_len, r.eos)
            mask = sub.response_mask
            ptx = None if demonstrations is None else demonstrations.draw(len(mb), generator, r.tokens.device)
            logprobs, entropy, values, ptx_loss = actor_critic(sub, ptx)                 # (b, N) each; scalar
            pg_loss, clipfrac = ppo_policy_loss(logprobs, batch.old_logprobs[mb], batch.advantages[mb],
                                                mask, cfg.clip_eps)
            step = {"ppo/policy_loss": pg_loss, "ppo/clipfrac": clipfrac,
                    "ppo/approxkl": 0.5 * masked_mean((logprobs.detach() - batch.old_logprobs[mb]) ** 2, mask)}
            if values is not None:
                step["ppo/value_loss"] = value_loss(values, batch.old_values[mb], batch.returns[mb], mask,
                                                    cfg.value_clip)
            if ptx_loss is not None:
                step["ppo/ptx_loss"] = ptx_loss
            if cfg.entropy_coef:
                step["ppo/update_entropy"] = masked_mean(entropy, mask)                  # D21
            (pg_loss + cfg.vf_coef * step.get("ppo/value_loss", 0.0)
             + cfg.ptx_coef * step.get("ppo/ptx_loss", 0.0)
             - cfg.entropy_coef * step.get("ppo/update_entropy", 0.0)).backward()
            optim.clip_and_step(optimizer, [actor_critic], cfg.grad_clip, where)
            stats.append({name: value.item() for name, value in step.items()})
    return {name: sum(s[name] for s in stats) / len(stats) for name in stats[0]}


def batch_stats(batch: Batch, world: World | None) -> dict[str, float]:
    """What the step log records about the rollout itself (see docs/ppo.md for meanings); gold
    and style only where the world judges the prompts (world None: a --prompts file's)."""
    r, mask = batch.rollout, batch.rollout.response_mask
    log_ratio = (batch.ref_logprobs - batch.old_logprobs) * mask
    judged = evaluate.judge_texts(world, r.prompts, r.responses, r.ended.tolist()) if world else None
    return {"ppo/score": batch.scores.mean().item(),
            **({"ppo/gold": judged["gold_mean"]} if judged else {}),
            "ppo/kl": batch.kl.sum(-1).mean().item(),
            "ppo/kl_k3": ((log_ratio.exp() - 1 - log_ratio) * mask).sum(-1).mean().item(),
            "ppo/entropy": masked_mean(batch.entropy, mask).item(),
            **({} if batch.old_values is None else
               {"ppo/explained_variance": explained_variance(batch.old_values, batch.returns, mask)}),
            "ppo/response_len": evaluate.mean_bytes(r.responses), "ppo/eos_rate": r.ended.float().mean().item(),
            **({f"ppo/style_{s}": share for s, share in judged["style_mix"].items()} if judged else {})}


# ------------------------------------------------------------------ the loop

def build_models(cfg: PPOConfig, device, reward_fn: RewardFn | None, world: World):
    """Policy and frozen reference from SFT; the reward model (or the gold judge); for GAE the
    critic, from the reward model (None for the critic-free estimators)."""
    check_exists(cfg, "sft", *(("rm",) if reward_fn is None and cfg.reward == "model" else ()))
    policy = load_model(cfg.sft, device)
    reference = copy.deepcopy(policy).eval().requires_grad_(False)   # one read of a large checkpoint, not two
    reward_model = None
    if reward_fn is None and cfg.reward == "gold":
        reward_fn = gold_reward(world, reference, cfg.seed, cfg.sampling())
    if reward_fn is None:
        reward_model = load_reward_model(cfg.rm, device).eval().requires_grad_(False)
        check_reads_whole_rollouts(cfg, reward_model, policy)
        reward_fn = model_reward(reward_model)
    value_model = new_critic(reward_model, reference) if cfg.advantage == "gae" else None   # D17: GAE's alone
    compile_if(cfg.compile, policy, reference, *(m for m in (value_model, reward_model) if m is not None))
    return policy, reference, value_model, reward_fn


def check_reads_whole_rollouts(cfg: PPOConfig, reward_model, policy: CausalLM) -> None:
    """The reward model scores the rollouts' own token ids, prompt and answer together, up to
    the policy's whole context: it must read them with the policy's tokenizer and context."""
    if reward_model.tokenizer != policy.tokenizer:
        raise ConfigError(f"the reward model ({cfg.rm}) and the policy ({cfg.sft}) use different tokenizers, so the "
                          "reward model cannot read the policy's rollouts: train the reward model on this SFT model")
    reward_context, policy_context = reward_model.config.context_len, policy.config.context_len
    if reward_context < policy_context:
        raise ConfigError(f"the reward model ({cfg.rm}) reads {reward_context} tokens, but the policy ({cfg.sft}) "
                          f"writes rollouts of up to {policy_context}: train the reward model on this SFT model, "
                          "or on one with as long a context")


def gold_reward(world: World, sft: CausalLM, seed: int, sampling: SamplingConfig) -> RewardFn:
    """D18: the world's gold judge as PPO's reward, an oracle with none of a learned reward model's
    errors, so a run against it shows how far PPO itself takes the policy (the ceiling for any
    reward model). Scaled as a reward model is (D12): mean 0, std 1 on the SFT model's own
    answers to training prompts, sampled as PPO samples (`sampling`: a shorter length limit
    cuts more answers, which the judge scores as malformed), so β and the other defaults mean
    the same against either."""
    prompts = world.prompts("train")[:GOLD_NORM_SAMPLES]
    answers = sample_rollouts(sft, prompts, sampling, seed=seed)
    sft_scores = torch.tensor([j.score for j in evaluate.judge_all(world, prompts, response_texts(answers),
                                                                   ended_flags(answers))])
    mean, std = sft_scores.mean().item(), sft_scores.std().clamp(min=1e-6).item()

    def score(r: Rollout) -> Tensor:   # an answer cut before its EOS is malformed (World.judge)
        gold = torch.tensor([j.score for j in evaluate.judge_all(world, r.prompts, r.responses, r.ended.tolist())],
                            device=r.tokens.device)
        return (gold - mean) / std                                            # (B,)
    return score


def new_critic(reward_model: RewardModel | None, reference: CausalLM) -> RewardModel:
    """D9: the critic starts as the reward model (its first member), a per-token head on a copy
    of its trunk; under a programmatic reward, a zero head on a copy of the SFT trunk."""
    first = getattr(reward_model, "members", [reward_model])[0]
    trunk = reference if first is None else first.backbone
    value_model = RewardModel(copy.deepcopy(trunk).requires_grad_(True))              # per-token head only
    if first is None:
        torch.nn.init.zeros_(value_model.head.weight)
        torch.nn.init.zeros_(value_model.head.bias)
    else:
        value_model.head.load_state_dict(first.head.state_dict())
    return value_model.to(next(reference.parameters()).device).train()


def train_ppo(cfg: PPOConfig, reward_fn: RewardFn | None = None, world: World | None = None) -> dict:
    """Rollout, score, advantages, update; returns the final metrics (out/metrics.json)."""
    cfg.validate()
    device = pick_device(cfg.device)
    distributed.init(device)
    seed_everything(cfg.seed)
    world = world or World(WorldConfig(seed=cfg.world_seed))
    unread = () if reward_fn is None and cfg.reward == "model" else ("rm",)       # the gold judge, or a given reward
    policy, reference, value_model, reward_fn = build_models(cfg, device, reward_fn, world)  # a bad path stops here
    prompts, judge, files = training_prompts(cfg, world, policy)                               # a bad file too
    demonstrations = ptx_demonstrations(cfg, world, policy, files)
    run = Run(cfg.out, "ppo", cfg, files, unread)
    if run.finished:
        return run.finished_metrics()
    modules = trained_modules(policy, value_model)
    optimizer = optim.adamw(list(modules.values()), cfg.lr, 0.0)
    kl_ctl = AdaptiveKL(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon) if cfg.kl_target else FixedKL(cfg.kl_coef)
    start = resume_step(run, cfg, modules, optimizer)
    baseline = resumed_leash(run, kl_ctl) if start else 0.0
    with autocast(device, cfg.precision):
        ppo_loop(cfg, run, (prompts, demonstrations), judge, (policy, reference, value_model, reward_fn),
                 optimizer, kl_ctl, start, baseline, device)
        return finish(run, policy)


def leash_state(kl_ctl: FixedKL, baseline: float) -> dict[str, str]:
    """β and the running baseline as the next iteration will use them, for the train state's
    metadata (repr: the floats exactly)."""
    return {"kl_coef": repr(float(kl_ctl.value)), "baseline": repr(float(baseline))}


def resumed_leash(run: Run, kl_ctl: FixedKL) -> float:
    """Restore β into kl_ctl from the train state a run resumes from; returns the baseline."""
    path = run.path / "train_state.safetensors"
    saved = tensor_metadata(path)
    if not {"kl_coef", "baseline"} <= saved.keys():
        raise ConfigError(f"{path} keeps no β or baseline (an earlier rlhf-lab saved it); pass --no-resume to "
                          "start over")
    kl_ctl.value = float(saved["kl_coef"])
    return float(saved["baseline"])


def training_prompts(cfg: PPOConfig, world: World, policy: CausalLM) -> tuple[list[str], World | None, dict]:
    """D19: PPO's prompts, the world that judges their answers, and what loading a file kept: the
    world's training prompts, or a --prompts file's, which no gold judge knows (None)."""
    if not cfg.prompts:
        return world.prompts("train"), world, {}
    files = {}
    rows, _ = data.load(cfg.prompts, "prompt", policy.tokenizer, policy.config.context_len, cfg.on_invalid,
                        cfg.overflow, files)
    return [row.prompt for row in rows], None, files


PTX_WORLD_EXAMPLES = 20_000   # the world's SFT examples PPO-ptx draws from (a default run reads about 10,000)


def ptx_demonstrations(cfg: PPOConfig, world: World, policy: CausalLM, files: dict) -> Demonstrations | None:
    """D20: PPO-ptx's demonstrations, this rank's share; None for plain PPO. A file's (what
    loading it kept goes into `files`), else the world's SFT mix on its training prompts."""
    if not cfg.ptx_coef:
        return None
    tok = policy.tokenizer
    if cfg.ptx_data:
        examples, _ = data.load(cfg.ptx_data, "sft", tok, policy.config.context_len, cfg.on_invalid, cfg.overflow,
                                files)
    else:
        examples = sft.world_examples(world, "train", PTX_WORLD_EXAMPLES, cfg.seed)
    return Demonstrations(tok, distributed.shard(sft.encode_examples(tok, examples), "PPO-ptx demonstrations"))


PROMPT_STREAM, SAMPLING_STREAM = 0, 1   # stream_seed's names for an iteration's two random streams


def ppo_loop(cfg: PPOConfig, run: Run, inputs: tuple[list[str], Demonstrations | None], world: World | None, models,
             optimizer, kl_ctl: FixedKL, start: int, baseline: float, device) -> None:
    """Iterations start..cfg.iterations, each checkpoint with its iteration's samples.
    inputs: the training prompts and PPO-ptx's demonstrations (None without). world: the gold
    judge of the prompts' answers, None for a --prompts file's."""
    (prompts, demonstrations), (policy, reference, value_model, reward_fn) = inputs, models
    modules = trained_modules(policy, value_model)
    actor_critic = distributed.wrap(ActorCritic(policy, value_model))
    prompts = distributed.shard(prompts, "training prompts")
    sampling = cfg.sampling()
    bar, tick = progress(cfg.iterations, "ppo", start), time.perf_counter()
    for it in range(start, cfg.iterations):
        # each iteration and rank its own streams (D15): the prompts drawn and minibatch order, the samples
        generator = torch.Generator().manual_seed(stream_seed(cfg.seed, PROMPT_STREAM, it, distributed.rank()))
        drawn = torch.randint(len(prompts), (cfg.batch_size // cfg.samples_per_prompt,), generator=generator)
        batch_prompts = [prompts[i] for i in drawn for _ in range(cfg.samples_per_prompt)]
        sampler = torch.Generator(device).manual_seed(stream_seed(cfg.seed, SAMPLING_STREAM, it, distributed.rank()))
        r = rollout(policy, batch_prompts, sampling, sampler)
        batch = score_batch(reference, value_model, reward_fn, r, cfg, kl_ctl.value, baseline)
        stats = {**batch_stats(batch, world),
                 **ppo_update(actor_critic, optimizer, batch, cfg, generator, demonstrations, f"ppo iteration {it + 1}")}
        stats = distributed.all_mean(stats)   # D15: so β and the baseline agree on every rank
        baseline = cfg.baseline_decay * baseline + (1 - cfg.baseline_decay) * (   # D13: of the total reward
            stats["ppo/score"] - kl_ctl.value * stats["ppo/kl"])
        stats.update({"ppo/kl_coef": kl_ctl.value, "ppo/baseline": baseline,
                      "ms_per_iteration": 1000 * (time.perf_counter() - tick)})
        kl_ctl.update(stats["ppo/kl"], iteration_episodes(cfg))
        run.log(it + 1, stats)
        bar.update()
        if (it + 1) % cfg.eval_every == 0 or it + 1 == cfg.iterations:
            judged = f"| gold {stats['ppo/gold']:.2f} | ideal {stats['ppo/style_ideal']:.2f} " if world else ""
            status(f"ppo {it + 1}/{cfg.iterations} | score {stats['ppo/score']:.2f} {judged}| kl {stats['ppo/kl']:.2f} "
                   f"| clipfrac {stats['ppo/clipfrac']:.2f} | {stats['ms_per_iteration']:.0f} ms/it")
            if distributed.is_main():   # the samples first: a run stopped after its last checkpoint still has them
                write_json(run.path / "samples.json", [{"prompt": p, "response": t}
                                                       for p, t in zip(r.prompts, r.responses)])
                save_train_state(run.path / "train_state.safetensors", modules, optimizer, it + 1, run.seconds(),
                                 leash_state(kl_ctl, baseline))
        tick = time.perf_counter()
    bar.close()


def iteration_episodes(cfg: PPOConfig) -> int:
    """Episodes of one iteration over all ranks: under torchrun each rank samples batch_size
    of its own (D15), and the adaptive β moves per episode (D8), as TRL counts them."""
    return cfg.batch_size * distributed.world_size()


def trained_modules(policy: CausalLM, value_model: RewardModel | None) -> dict[str, nn.Module]:
    """What the optimizer steps and the train state saves: the policy, and the critic if any."""
    return {"policy": policy, **({"value": value_model} if value_model is not None else {})}


def finish(run: Run, policy: CausalLM) -> dict:
    """Save the policy, curves and the final figures (the last batch's samples are the last
    checkpoint's, samples.json)."""
    if not distributed.is_main():
        return {}
    save_model(run.path / "model.safetensors", policy)
    last = run.history()[-1]
    evaluate.plot_history(run, [k for k in ("ppo/score", "ppo/gold", "ppo/kl", "ppo/response_len", "ppo/style_ideal")
                                if k in last], "PPO training", "ppo_curves.png")
    metrics = run.finish({k.split("/", 1)[1]: v for k, v in last.items() if k.startswith("ppo/")})
    status(evaluate.table("PPO (last iteration)", metrics) + f"\nrun directory: {run.path}")
    return metrics


def main(cfg: PPOConfig) -> dict:
    metrics = train_ppo(cfg)
    distributed.barrier()   # under torchrun: the next stage reads what rank 0 has just saved
    return metrics
