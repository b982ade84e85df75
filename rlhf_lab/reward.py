"""Stage 2, the reward model: the SFT transformer with its LM head swapped for a scalar head.

Trained on preference pairs with the Bradley-Terry loss -log σ(r(chosen) - r(rejected))
(Bradley & Terry 1952; Ouyang et al. 2022 eq. 1). Every trunk parameter learns;
the textbook version updated only the head, on embedding-layer features.
As in InstructGPT, a prompt's answers are ranked K at a time and all K-choose-2 of
its comparisons train in one batch, each answer scored once (K forward passes for
K(K-1)/2 pairs); the world's default K is 7, one answer per style. One addition:
the reward is normalised to mean 0 / std 1 on the SFT model's own responses (as
Ziegler et al. 2019 do), and the offset and scale are stored in the checkpoint.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlhf_lab import data, distributed, evaluate, optim
from rlhf_lab.model import CausalLM, GPTConfig, MiniGPT, SamplingConfig, fp32, next_token_logprobs, positions_from_mask
from rlhf_lab.rollout import chunk_budget, map_length_chunks, sample_texts
from rlhf_lab.run import (
    PRECISIONS, SHIPPED, ConfigError, Run, architecture, autocast, check_choice, check_exists, check_non_negative,
    check_numbers, check_out, check_positive, check_range, check_unused, check_world_only, compile_if, empty_model,
    fresh_report_directory, load_model, load_state, load_tensors, pick_device, progress, read_json, recorded_config,
    resume_step, run_directory, save_tensors, save_train_state, seed_everything, status, tensor_metadata, write_json)
from rlhf_lab.tokenizer import BYTES, Tokenizer
from rlhf_lab.world import STYLES, World, annotated_world, check_context_fits

POOLINGS = ("last", "mean")


class RewardModel(nn.Module):
    """trunk (any CausalLM) + linear scalar head, pooled over a sequence, plus an optional
    likelihood read-out.

    tokens, mask (B, T) → reward (B,). `offset`/`scale` normalise the raw score.

    The read-out: a byte-level trunk this small holds its facts as next-token predictions
    (the shipped SFT model ranks the ideal answer above the same sentence with a wrong fact
    95.6% of the time by log-likelihood), not as a feature of its last hidden state that a
    linear head can read, and Bradley-Terry training on a few thousand prompts does not
    teach the head to check a fact (measured: 0.55 agreement with gold on training pairs
    of a correct and a wrong answer). With likelihood_weight w > 0 the reward adds
    w · the trunk's mean log p(y_t | x, y_<t) over response tokens, weighted by a learned
    gate on the predicting hidden state, so the model learns which tokens (the answer,
    not the filler) to check. The gate starts open everywhere (a plain mean). w = 0 is
    InstructGPT's head alone.
    """

    def __init__(self, backbone: CausalLM, pooling: str = "last", likelihood_weight: float = 0.0):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.config.width, 1)
        self.pooling = pooling
        self.likelihood_weight = likelihood_weight
        if likelihood_weight:
            self.likelihood_gate = nn.Linear(backbone.config.width, 1)
            nn.init.zeros_(self.likelihood_gate.weight)
            nn.init.zeros_(self.likelihood_gate.bias)
        if not likelihood_weight:   # the LM head is never called: a parameter of its own would get no gradient,
                                    # which DistributedDataParallel takes for a rank left behind (and stops)
            for param in getattr(backbone, "head_only_parameters", list)():
                param.requires_grad_(False)
        self.register_buffer("offset", torch.zeros(()))
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("temperature", torch.ones(()))   # R10: set by fit_temperature, else 1

    @property
    def config(self) -> GPTConfig:
        return self.backbone.config

    @property
    def tokenizer(self) -> Tokenizer:
        return self.backbone.tokenizer

    def token_scores(self, tokens: Tensor, mask: Tensor, outputs_from: int = 0) -> Tensor:
        """(B, T) → (B, T - outputs_from): the head at every column from outputs_from on
        (the value model uses this)."""
        return self._head(self._hidden(tokens, mask, outputs_from))

    def forward(self, tokens: Tensor, mask: Tensor, response_start: Tensor) -> Tensor:
        """Raw reward (B,), whose differences are the log-odds of a preference (divided by the
        calibration temperature, R10). response_start (B,) is each row's first response column."""
        first = max(int(response_start.min()) - 1, 0)                # no column before it is read
        hidden = self._hidden(tokens, mask, first)                                   # (B, T - first, D)
        reward = pool(self._head(hidden), mask[:, first:], response_start - first, self.pooling)
        if self.likelihood_weight:
            reward = reward + self.likelihood_weight * self.gated_likelihood(hidden, tokens, mask, response_start)
        return reward / self.temperature

    def gated_likelihood(self, hidden: Tensor, tokens: Tensor, mask: Tensor, response_start: Tensor) -> Tensor:
        """(B,): response tokens' log p under the trunk's own LM head, gated mean.
        hidden: the trunk's states of the last columns first..T-1, (B, T - first, D)."""
        first = tokens.shape[1] - hidden.shape[1]
        _, logp = next_token_logprobs(self.backbone, hidden, tokens, first + 1)     # (B, T-first-1): log p(x_t)
        predicting = hidden[:, :-1]                                                  # (B, T-first-1, D) reads x_<t
        columns = torch.arange(first + 1, tokens.shape[1], device=tokens.device)     # (T-first-1,)
        response = mask[:, first + 1:] & (columns[None, :] >= response_start[:, None])
        gate = torch.sigmoid(self.likelihood_gate(predicting).squeeze(-1)) * response
        return (gate * logp).sum(-1) / gate.sum(-1).clamp(min=1e-6)

    def _head(self, hidden: Tensor) -> Tensor:
        """(B, T, D) → (B, T), in fp32 under bf16 autocast: rewards and values enter the
        losses as differences, which bf16's 8 mantissa bits would round away."""
        with fp32(hidden):
            return self.head(hidden.float()).squeeze(-1)

    def _hidden(self, tokens: Tensor, mask: Tensor, outputs_from: int = 0) -> Tensor:
        return self.backbone.trunk(tokens, positions_from_mask(mask), mask, outputs_from=outputs_from)

    def score(self, tokens: Tensor, mask: Tensor, response_start: Tensor) -> Tensor:
        """Normalised reward (B,): mean 0, std 1 on the SFT model's own answers."""
        return (self(tokens, mask, response_start) - self.offset) / self.scale


def pool(scores: Tensor, mask: Tensor, response_start: Tensor, pooling: str) -> Tensor:
    """(B, T) per-position scores → (B,). "last": at the last real token (EOS), whose
    hidden state has read the whole sequence, under left or right padding alike;
    "mean": the average over response tokens."""
    columns = torch.arange(mask.shape[1], device=mask.device)                        # (T,)
    if pooling == "last":
        last = (mask.long() * columns).argmax(-1)                                    # (B,)
        return scores.gather(1, last[:, None]).squeeze(1)
    response = mask & (columns[None, :] >= response_start[:, None])                 # (B, T)
    return (scores * response).sum(-1) / response.sum(-1).clamp(min=1)


class RewardEnsemble(nn.Module):
    """K reward models; the reward is their mean, or mean - k·std to be conservative
    where they disagree (Coste et al. 2024, reward-model ensembles against over-optimization)."""

    def __init__(self, members: list[RewardModel], std_coef: float = 0.0):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.std_coef = std_coef
        self.config = members[0].config
        self.tokenizer = members[0].tokenizer

    def forward(self, tokens: Tensor, mask: Tensor, response_start: Tensor) -> Tensor:
        """Raw reward (B,): the members' mean Bradley-Terry logit (what calibration reads)."""
        return torch.stack([m(tokens, mask, response_start) for m in self.members]).mean(0)

    def score(self, tokens: Tensor, mask: Tensor, response_start: Tensor) -> Tensor:
        scores = torch.stack([m.score(tokens, mask, response_start) for m in self.members])  # (K, B)
        return scores.mean(0) - self.std_coef * scores.std(0, unbiased=False)


def bradley_terry_loss(chosen: Tensor, rejected: Tensor) -> Tensor:
    """-log σ(r_c - r_r), mean over pairs; logsigmoid is exact where σ underflows."""
    return -F.logsigmoid(chosen - rejected).mean()


def encode_responses(tok: Tokenizer, prompts: list[str], responses: list[str], device,
                     max_len: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Right-padded prompt-response rows (BOS prompt SEP response EOS for bytes): tokens,
    mask (B, T), response_start (B,).

    max_len (the model's context): longer rows lose the end of their response, EOS kept.
    A sampled response fits the context as tokens, but its text can outgrow it: each byte
    of broken UTF-8 decodes to U+FFFD, three bytes when encoded again."""
    pairs = [tok.encode_pair(p, r) for p, r in zip(prompts, responses)]
    if max_len is not None:
        pairs = [(t if len(t) <= max_len else t[:max_len - 1] + [tok.eos], s) for t, s in pairs]
    tokens, mask = tok.right_pad([t for t, _ in pairs])
    start = torch.tensor([s for _, s in pairs])
    return tokens.to(device), mask.to(device), start.to(device)


CHUNK_TOKENS = 4096   # padded tokens per forward pass when scoring rows sorted by length


def score_texts(score_fn, tok: Tokenizer, prompts: list[str], responses: list[str], device,
                max_len: int | None = None, chunk_tokens: int | None = None) -> Tensor:
    """Scores (N,) of (prompt, response) rows, in chunks of rows of similar length.

    Padding a whole batch to its longest row wastes about a third of a world batch's
    positions; rows grouped by rollout.length_chunks (at most `chunk_tokens` padded
    tokens each, rollout.chunk_budget by default) skip most of that, with the same
    scores and gradients.
    score_fn: a RewardModel (raw, for training) or its .score (normalised); tok: its tokenizer;
    max_len: as in encode_responses, for sampled texts."""
    tokens, mask, start = encode_responses(tok, prompts, responses, "cpu", max_len)        # (N, T) right-padded

    def score(rows: Tensor, _: int, end: int) -> tuple[Tensor]:                      # right padding: first is 0
        return (score_fn(tokens[rows, :end].to(device), mask[rows, :end].to(device), start[rows].to(device)),)
    return map_length_chunks(score, mask, chunk_tokens or chunk_budget(device, CHUNK_TOKENS))[0]


def pair_rewards(score_fn, tok: Tokenizer, pairs: list[data.PreferencePair], device,
                 max_len: int | None = None) -> tuple[Tensor, Tensor]:
    """Rewards of chosen and rejected (B,) each, from one pass in which every distinct
    (prompt, response) is scored once: a ranked prompt's K-choose-2 pairs cost K sequences.
    score_fn, tok, max_len: as in score_texts."""
    index: dict[tuple[str, str], int] = {}
    for p in pairs:
        index.setdefault((p.prompt, p.chosen), len(index))
        index.setdefault((p.prompt, p.rejected), len(index))
    prompts, responses = (list(column) for column in zip(*index))
    rewards = score_texts(score_fn, tok, prompts, responses, device, max_len)              # (U,) distinct answers
    chosen = torch.tensor([index[p.prompt, p.chosen] for p in pairs], device=rewards.device)
    rejected = torch.tensor([index[p.prompt, p.rejected] for p in pairs], device=rewards.device)
    return rewards[chosen], rewards[rejected]


def group_pairs(pairs: list[data.PreferencePair]) -> list[list[data.PreferencePair]]:
    """Pairs of one ranked prompt (meta "group") stay together; any other pair (a null group too)
    is its own group. InstructGPT trains a prompt's comparisons as one batch element: shuffled
    apart, each answer would be seen K-1 times per epoch, and the reward model overfits."""
    groups: dict = {}
    for i, pair in enumerate(pairs):
        group = pair.meta.get("group")
        groups.setdefault(("row", i) if group is None else group, []).append(pair)
    return list(groups.values())


@torch.no_grad()
def score_pairs(model: RewardModel | RewardEnsemble, pairs: list[data.PreferencePair], device,
                raw: bool = False) -> tuple[Tensor, Tensor]:
    """Rewards (N,) of chosen and rejected for a whole set: normalised (what PPO sees)
    or raw (the trained Bradley-Terry logits, whose differences are log-odds). Answers
    longer than the model's context (the textbook's, for a short-context model) are cut."""
    model.eval()
    chosen, rejected = pair_rewards(model if raw else model.score, model.tokenizer, pairs, device,
                                    model.config.context_len)
    model.train()
    return chosen.cpu(), rejected.cpu()


@dataclass
class RewardConfig:
    out: str = "runs/rm"            # run directory
    sft: str = SHIPPED              # SFT run directory: trunk init and normalisation samples
    from_scratch: bool = False      # random trunk instead of the SFT one (context_len applies)
    context_len: int = 256          # context of a from-scratch trunk
    data: str = ""                  # preference JSONL; empty → the assistant world
    eval_data: str = ""             # held-out pairs JSONL; empty → the world's held-out splits, or with --data
                                    # its --heldout-share of prompts, which are then not trained on
    heldout_share: float = 0.1      # with --data and no --eval-data: share of the file's prompts held out as
                                    # validation pairs (by a hash of each prompt, as rlhf sft does); 0: none.
                                    # On the world, with --calibrate: the share of its training prompts held out
    calibrate: bool = False         # R10: temperature scaling of σ(r_c − r_r) on validation pairs held out from the
                                    # training data (needs --heldout-share > 0 and no --eval-data)
    world_seed: int = 0             # the world's facts, splits and phrasings
    pairs: int = 28000              # world training pairs (about: whole ranked prompts)
    responses_per_prompt: int = 7   # K: world answers ranked per prompt, giving K(K-1)/2 pairs
    heldout_pairs: int = 2000       # world pairs per held-out split (on 500, sampling noise alone adds ~0.03 to ECE)
    label_temperature: float = 0.1  # Bradley-Terry label noise of the world's annotators
    length_bias: float = 0.0        # world annotators' preference for longer answers (per 100 bytes)
    format_bias: float = 0.0        # world annotators' extra utility for a formatted (markdown) answer
    hedging_bias: float = 0.0       # world annotators' extra utility for a hedged answer
    sycophancy_bias: float = 0.0    # world annotators' extra utility for flattery or agreeing with a false premise
    pooling: str = "last"           # "last" non-pad token (InstructGPT) | "mean" over the response
    likelihood_weight: float = 5.0  # w of the gated log-likelihood read-out (RewardModel); 0: the head alone
    epochs: int = 2                 # passes over the training pairs (a checkpoint at each one's end)
    batch_size: int = 16            # prompts per step, with all their pairs
    lr: float = 1e-3                # peak learning rate (AdamW's; Muon's is scaled to match it)
    optimizer: str = "adamw"        # "adamw" | "muon": Muon on the hidden matrices, AdamW on the rest (docs/sft.md)
    warmup: int = 30                # linear warmup steps (a tenth of the run if not shorter)
    weight_decay: float = 0.01      # AdamW weight decay on matrices
    grad_clip: float = 1.0          # global gradient-norm clip
    ensemble: int = 1               # K reward models, different seeds and data orders
    ensemble_std_coef: float = 0.0  # ensemble reward = mean - k·std (0: plain mean)
    norm_samples: int = 256         # SFT responses used to normalise the reward
    on_invalid: str = "error"       # bad JSONL rows: "error" | "skip"
    overflow: str = "error"         # rows longer than the context: "error" | "skip" | "truncate"
                                    # (cuts the prompt's oldest bytes; a row whose answer leaves its
                                    # prompt under 16 tokens is skipped)
    seed: int = 0                   # init, data order, sampling
    device: str = "auto"            # "auto" | "cpu" | "cuda"
    precision: str = "fp32"         # "fp32" | "bf16" autocast (for wide models; slower at width 128)
    compile: bool = False           # torch.compile the blocks (slower at width 128, docs/benchmarks.md)
    resume: bool = True             # continue from out/train_state_<member>.safetensors if present

    def validate(self) -> None:
        check_numbers(self)
        check_choice("pooling", self.pooling, POOLINGS)
        check_choice("precision", self.precision, PRECISIONS)
        optim.check_optimizer(self.optimizer)
        data.check_read_options(self, "data", "eval_data")
        check_positive(self, "pairs", "heldout_pairs", "epochs", "batch_size", "lr", "ensemble", "grad_clip")
        check_range(self, "heldout_share", 0.0, 1.0)
        if self.calibrate and (self.eval_data or not self.heldout_share):
            raise ConfigError("--calibrate fits a temperature on validation pairs held out from the training data "
                              "(the world's or --data's): it needs --heldout-share > 0 and no --eval-data (fitting "
                              "on the file it is judged on would tune on it)")
        check_range(self, "norm_samples", 2)    # a standard deviation needs two answers
        check_non_negative(self, "label_temperature", "likelihood_weight", "warmup", "weight_decay",
                           "ensemble_std_coef")
        check_ensemble_spread(self)
        check_unused(self, ("heldout_share",), bool(self.eval_data) or not (self.data or self.calibrate), "hold",
                     "out validation pairs: a --data file's without --eval-data, or with --calibrate the world's")
        if self.from_scratch and not self.data:
            check_context_fits(self.context_len)
        check_unused(self, ("context_len",), not self.from_scratch, "size",
                     "a fresh trunk (--from-scratch); the SFT model brings its own")
        check_range(self, "responses_per_prompt", 2, len(STYLES))    # one answer per style
        check_world_only(self, ("world_seed", "pairs", "responses_per_prompt", "heldout_pairs", "label_temperature",
                                "length_bias", "format_bias", "hedging_bias", "sycophancy_bias"))


def check_ensemble_spread(cfg) -> None:
    """--ensemble-std-coef weighs the members' disagreement, which one member does not have (a
    RewardConfig's, or an experiment's with the same two fields)."""
    check_unused(cfg, ("ensemble_std_coef",), cfg.ensemble == 1, "weigh",
                 "the spread of an ensemble's members, and --ensemble 1 has one")


def ensemble_settings(members: int, std_coef: float) -> dict:
    """RewardConfig's ensemble fields for an experiment whose --ensemble-std-coef (a default that
    applies to larger ensembles) meets --ensemble 1."""
    return {"ensemble": members, "ensemble_std_coef": std_coef if members > 1 else 0.0}


def pairs_from_rows(rows: list[dict]) -> list[data.PreferencePair]:
    """The world's pairs, each with its prompt's heldout_key as data.load gives a file's rows."""
    keys = ("prompt", "chosen", "rejected")
    return [data.PreferencePair(*(r[k] for k in keys), meta={k: v for k, v in r.items() if k not in keys},
                                heldout_key=data.heldout_key(r["prompt"])) for r in rows]


def world_heldout(cfg: RewardConfig, world: World) -> dict[str, list]:
    """The world's held-out pairs by prompt, template and fact, labelled as in training."""
    return {split: pairs_from_rows(world.preference_pairs(split, cfg.heldout_pairs, cfg.seed + 1))
            for split in ("heldout_prompt", "heldout_template", "heldout_fact")}


def load_pairs(cfg: RewardConfig, world: World, tok: Tokenizer, context_len: int
               ) -> tuple[list, dict[str, list], dict[str, dict]]:
    """Training pairs and named held-out sets, from files (each row checked to fit the reward
    model's context) or from the world, and what loading each file kept and skipped."""
    files = {}

    def from_file(path):
        return data.load(path, "preference", tok, context_len, cfg.on_invalid, cfg.overflow, files)[0]

    train = (from_file(cfg.data) if cfg.data else
             pairs_from_rows(world.preference_pairs("train", cfg.pairs, cfg.seed, cfg.responses_per_prompt)))
    if cfg.eval_data:
        heldout = {"heldout": from_file(cfg.eval_data)}
    elif cfg.data and cfg.heldout_share:
        train, validation = data.split_heldout(train, cfg.heldout_share, cfg.data,   # --calibrate fits on them
                                               "give rows of more prompts" if cfg.calibrate else "give --eval-data")
        heldout = {"heldout": validation}
    elif cfg.data:
        heldout = {}
    elif cfg.calibrate:     # R10 on the world: validation pairs from training prompts it then does not train on
        train, validation = data.split_heldout(train, cfg.heldout_share, "the world's training pairs",
                                               "draw more --pairs")
        heldout = {**world_heldout(cfg, world), VALIDATION: validation}
    else:
        heldout = world_heldout(cfg, world)
    return train, heldout, files


VALIDATION = "validation"   # the world's R10 validation set among the held-out sets (a file's is its "heldout")


def validation_pairs(heldout: dict[str, list]) -> list[data.PreferencePair]:
    """What --calibrate fits on: the world's validation pairs, or a file's held-out share (which
    its figures are then also on)."""
    return heldout[VALIDATION] if VALIDATION in heldout else heldout["heldout"]


def new_reward_model(cfg: RewardConfig, sft_policy: CausalLM, device) -> RewardModel:
    """R1: a copy of the SFT model's trunk (one read of its checkpoint serves every member), or a fresh one."""
    backbone = MiniGPT(GPTConfig(context_len=cfg.context_len)) if cfg.from_scratch else copy.deepcopy(sft_policy)
    return RewardModel(backbone, cfg.pooling, cfg.likelihood_weight).to(device)


PROGRESS_PAIRS = 500   # held-out pairs of the headline set scored after each epoch
LOG_EVERY = 10         # steps per step-log line, which holds their mean loss and accuracy


def train_member(cfg: RewardConfig, run: Run, member: int, groups: list[list], steps_per_epoch: int,
                 heldout: dict, sft_policy: CausalLM, device) -> RewardModel:
    """One reward model: Bradley-Terry with AdamW, warmup + cosine, clipping, and after each
    epoch a progress check on the first PROGRESS_PAIRS pairs of the headline held-out set
    (metrics.json has the figures on every pair of every set).
    groups: this rank's training pairs, grouped by ranked prompt (group_pairs)."""
    seed = cfg.seed + 1000 * member
    seed_everything(seed)
    model = new_reward_model(cfg, sft_policy, device)
    compile_if(cfg.compile, model)
    optimizer = optim.make_optimizer(cfg.optimizer, [model], cfg.lr, cfg.weight_decay)
    total = cfg.epochs * steps_per_epoch
    prefix = f"rm{member}" if cfg.ensemble > 1 else "rm"
    state = f"train_state_{member}.safetensors"
    start = resume_step(run, cfg, {"model": model}, optimizer, state, log_offset=member * total,
                        log_end=(member + 1) * total)
    headline = next(iter(heldout), None)
    progress_sets = {headline: heldout[headline][:PROGRESS_PAIRS]} if headline else {}
    bar, tick, window = progress(total, prefix, start), time.perf_counter(), []
    ddp_model = distributed.wrap(model)
    for step in range(start, total):
        epoch, index = divmod(step, steps_per_epoch)
        order = torch.randperm(len(groups), generator=torch.Generator().manual_seed(seed * 7919 + epoch))
        batch = [pair for i in order[index * cfg.batch_size:(index + 1) * cfg.batch_size] for pair in groups[i]]
        optim.set_lr(optimizer, optim.lr_at(step, total, cfg.lr, cfg.warmup))
        chosen, rejected = pair_rewards(ddp_model, model.tokenizer, batch, device)
        loss = bradley_terry_loss(chosen, rejected)
        loss.backward()
        optim.clip_and_step(optimizer, [model], cfg.grad_clip, f"{prefix} step {step + 1}")
        bar.update()
        window.append((loss.item(), (chosen > rejected).float().mean().item()))
        epoch_end = (step + 1) % steps_per_epoch == 0
        if not (epoch_end or (step + 1) % LOG_EVERY == 0):
            continue
        metrics = distributed.all_mean(window_metrics(prefix, window, time.perf_counter() - tick))   # every rank's pairs
        if epoch_end:
            metrics |= {f"{prefix}/{name}_accuracy": evaluate.pair_accuracy(*score_pairs(model, pairs, device))
                        for name, pairs in progress_sets.items()}
            status(f"{prefix} epoch {epoch + 1}/{cfg.epochs} | " + " | ".join(
                f"{k.split('/')[-1]} {v:.3f}" for k, v in metrics.items() if k != "ms_per_step")
                + f" | {metrics['ms_per_step']:.0f} ms/it")
        run.log(member * total + step + 1, metrics)   # before the checkpoint: a resume past it never rewrites it
        if epoch_end and distributed.is_main():
            save_train_state(run.path / state, {"model": model}, optimizer, step + 1, run.seconds())
        tick, window = time.perf_counter(), []
    bar.close()
    return model


def window_metrics(prefix: str, window: list[tuple[float, float]], seconds: float) -> dict[str, float]:
    """The step log's line for the steps since the last one: (loss, accuracy) per step → their
    means, and milliseconds per step."""
    return {f"{prefix}/loss": sum(loss for loss, _ in window) / len(window),
            f"{prefix}/accuracy": sum(accuracy for _, accuracy in window) / len(window),
            "ms_per_step": 1000 * seconds / len(window)}


def normalisation_prompts(pairs: list[data.PreferencePair], sft_policy: CausalLM, sft: str) -> list[str]:
    """The training prompts the SFT model answers for normalise, each cut from the left, as
    `rlhf ppo --overflow truncate` cuts them, to leave that model's context room for an answer
    (a reward model trained from scratch may have a longer context than the SFT model)."""
    distinct = dict.fromkeys(pair.prompt for pair in pairs)     # a ranked prompt's pairs share one prompt
    tok, context_len = sft_policy.tokenizer, sft_policy.config.context_len
    fitted = [data.fit_prompt(tok, p, data.answers_to_fit(data.Prompt(p)), context_len, "truncate") for p in distinct]
    prompts = [p for p in fitted if p is not None]
    if not prompts:
        raise ConfigError(f"--sft {sft} has a context of {context_len} tokens, too short for any training prompt "
                          f"and a {data.ANSWER_ROOM}-byte answer, so the reward cannot be normalised on its answers")
    return prompts


@torch.no_grad()
def normalise(model: RewardModel, prompts: list[str], sft_policy: CausalLM, n: int, seed: int, device) -> None:
    """Set offset/scale so the SFT model's own answers score mean 0, std 1: n answers, to the
    first n prompts, or cycling over fewer (a file whose pairs share one prompt still gives n)."""
    prompts = [prompts[i % len(prompts)] for i in range(n)]
    responses = sample_texts(sft_policy, prompts, SamplingConfig(), seed=seed)
    model.eval()
    raw = score_texts(model, model.tokenizer, prompts, responses, device, model.config.context_len)
    model.offset.fill_(raw.mean().item())
    model.scale.fill_(raw.std().clamp(min=1e-6).item())
    model.train()


def fit_temperature(model: RewardModel, pairs: list[data.PreferencePair], device) -> float:
    """Temperature scaling (Guo et al. 2017), R10: fit T on validation pairs and store it in the
    model. Orderings, and so accuracy and the normalised reward PPO sees, do not change;
    σ(r_c − r_r) becomes a calibrated probability where training left it overconfident."""
    model.temperature.fill_(1.0)
    chosen, rejected = score_pairs(model, pairs, device, raw=True)
    model.temperature.fill_(calibration_temperature(chosen - rejected))
    return model.temperature.item()


def calibration_temperature(margins: Tensor) -> float:
    """The T > 0 that minimises the Bradley-Terry loss −log σ(m / T) of labelled margins
    m = r_c − r_r (N,), by L-BFGS over log T (bounded to e^±7). Where every margin has one sign
    no T minimises it (all right: the loss falls on as T → 0), and T stays 1, said so."""
    if bool((margins > 0).all()) or bool((margins < 0).all()):
        status(f"calibrate: all {len(margins)} validation pairs are ordered {'right' if margins[0] > 0 else 'wrong'}, "
               "so no temperature fits them; it stays 1 (more validation pairs: --heldout-share)")
        return 1.0
    margins = margins.double()
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    search = torch.optim.LBFGS([log_t], max_iter=100, line_search_fn="strong_wolfe")

    def loss():
        search.zero_grad()
        value = -F.logsigmoid(margins / log_t.clamp(-7, 7).exp()).mean()
        value.backward()
        return value
    search.step(loss)
    return log_t.detach().clamp(-7, 7).exp().item()


def save_reward_model(path: Path, members: list[RewardModel], std_coef: float) -> None:
    """All members in one safetensors file, "<member>.<param>", with what rebuilds them."""
    tensors = {f"{i}.{k}": v for i, m in enumerate(members) for k, v in m.state_dict().items()}
    metadata = {**architecture(members[0].backbone), "pooling": members[0].pooling,
                "likelihood_weight": str(members[0].likelihood_weight),
                "members": str(len(members)), "std_coef": str(std_coef)}
    save_tensors(path, tensors, metadata)


def load_reward_model(path: str | Path, device="cpu") -> RewardModel | RewardEnsemble:
    """A reward model (or ensemble) from a file or an `rlhf train-rm` run directory."""
    path = Path(path)
    path = path / "model.safetensors" if path.is_dir() else path
    if not path.exists():
        raise FileNotFoundError(f"{path}: no reward model here (expected an `rlhf train-rm` run directory)")
    meta, tensors = tensor_metadata(path), load_tensors(path)
    if "members" not in meta:
        raise ConfigError(f"{path} holds a language model, not a reward model (expected an `rlhf train-rm` "
                          "run directory)")
    members = []
    for i in range(int(meta["members"])):
        member = RewardModel(empty_model(meta), meta["pooling"],
                             float(meta.get("likelihood_weight", 0.0)))
        load_state(member, {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"{i}.")}, path)
        members.append(member.to(device))
    return members[0] if len(members) == 1 else RewardEnsemble(members, float(meta["std_coef"])).to(device)


def gold_judge(world: World, cfg: RewardConfig, heldout: dict[str, list]) -> World | None:
    """The world's gold judge for the held-out figures, where it knows every held-out prompt:
    not for --data, nor for an --eval-data file of other prompts (another world's export)."""
    known = not cfg.data and all(world.knows(pair.prompt) for pairs in heldout.values() for pair in pairs)
    return world if known else None


def train_reward(cfg: RewardConfig) -> dict:
    """Train K ≥ 1 reward models, normalise each, evaluate, save; returns metrics.json."""
    cfg.validate()
    device = pick_device(cfg.device)
    distributed.init(device)
    world = annotated_world(cfg)
    check_exists(cfg, "sft")
    sft_policy = load_model(cfg.sft, device)                   # the trunk's context, and normalise's answers
    # the reward model's trunk: a fresh byte-level one (validate checked its context), or SFT's
    tok, context_len = (BYTES, cfg.context_len) if cfg.from_scratch else \
        (sft_policy.tokenizer, sft_policy.config.context_len)
    if not cfg.from_scratch and not cfg.data:
        check_context_fits(context_len, tok, cfg.sft)
    train, heldout, files = load_pairs(cfg, world, tok, context_len)   # a bad path or file stops before any write
    run = Run(cfg.out, "train-rm", cfg, files)
    if run.finished:
        return run.finished_metrics()
    all_groups = group_pairs(train)
    groups = distributed.shard(all_groups, "training prompts with their pairs")
    # every group once an epoch, the last step's batch smaller. Steps from the smallest shard: under
    # torchrun shards differ by one group, and a rank with one step more would wait forever in DDP's
    # gradient all-reduce (where the smallest is a multiple of the batch size, a larger shard
    # leaves one group out of each epoch, another one each time)
    steps_per_epoch = math.ceil(len(all_groups) // distributed.world_size() / cfg.batch_size)
    if cfg.data and any(pair.meta.get("group") is not None for pair in train):   # one group per file: one giant batch
        status(f"train-rm: {len(train)} pairs in {len(all_groups)} groups by their \"group\" key; a step takes "
               f"{cfg.batch_size} groups (--batch-size) with all their pairs: {steps_per_epoch} step(s) per epoch")
    prompts = normalisation_prompts(train, sft_policy, cfg.sft)   # before minutes of training
    members = []
    with autocast(device, cfg.precision):
        for member in range(cfg.ensemble):
            model = train_member(cfg, run, member, groups, steps_per_epoch, heldout, sft_policy, device)
            if cfg.calibrate:
                fit_temperature(model, validation_pairs(heldout), device)
            normalise(model, prompts, sft_policy, cfg.norm_samples, cfg.seed + member, device)
            members.append(model)
        if not distributed.is_main():
            return {}
        save_reward_model(run.path / "model.safetensors", members, cfg.ensemble_std_coef)
        metrics = evaluate.reward_report(members[0] if cfg.ensemble == 1 else
                                         RewardEnsemble(members, cfg.ensemble_std_coef),
                                         train, heldout, gold_judge(world, cfg, heldout), run.path, device)
        if cfg.calibrate:   # R10; a file's validation pairs' ECE below is then fitted, not measured (the world's
                            # held-out splits are not the pairs it fits on)
            metrics["calibration_temperature"] = sum(m.temperature.item() for m in members) / len(members)
    logged = dict.fromkeys(k for record in run.history() for k in record)     # every ensemble member's
    evaluate.plot_history(run, [k for k in logged if k.endswith(("loss", "accuracy"))],
                          "reward model training", "rm_training.png")
    metrics = run.finish(metrics)
    status(evaluate.table("reward model", metrics) + f"\nrun directory: {run.path}"
           + ("" if heldout else "\nno held-out set: --eval-data FILE or --heldout-share gives held-out accuracy "
                                 "and calibration"))
    return metrics


@dataclass
class RewardEvalConfig:
    rm: str = "runs/rm"             # `rlhf train-rm` run directory
    data: str = ""                  # preference JSONL to score; empty → the world's held-out splits
    out: str = ""                   # where to write metrics.json and plots (default: <rm>/eval)
    world_seed: int | None = None   # the world of the held-out pairs (default: the reward model's own)
    on_invalid: str = "error"       # bad JSONL rows: "error" | "skip" (counted, reported)
    overflow: str = "error"         # rows longer than the context: "error" | "skip" | "truncate"
                                    # (cuts the prompt's oldest bytes; a row whose answer leaves its
                                    # prompt under 16 tokens is skipped)
    per: str = "subset"             # a row key of --data (subset, category, ...) or of the world's pairs (chosen_style,
                                    # rejected_style): the figures per value too, in
                                    # metrics.json as by_<key>; rows without it, or with null, are left out there,
                                    # and with no row giving it a value the figures are skipped with a note; values
                                    # must be strings, numbers or booleans; "": none
    device: str = "auto"            # "auto" | "cpu" | "cuda"

    def validate(self) -> None:
        check_numbers(self)
        data.check_read_options(self, "data")


def training_config(rm: str | Path) -> RewardConfig:
    """The config a `rlhf train-rm` run recorded (the defaults where it recorded none)."""
    path = run_directory(rm) / "config.json"
    if not path.exists():
        return RewardConfig()
    known = {f.name for f in fields(RewardConfig)}
    return RewardConfig(**{k: v for k, v in read_json(path).items() if k in known})


def per_key(cfg: RewardEvalConfig, pairs: list[data.PreferencePair]) -> str:
    """--per, or "" with a note when no row of --data gives it a value (the default "subset" on
    `rlhf world export` files, whose rows name their split): a breakdown of nothing would be an
    empty record in metrics.json that says nothing of why. The world's pairs name their styles
    (chosen_style, rejected_style); the default, a key of files, passes them without a note."""
    source = cfg.data or "the world's held-out pairs"
    if not cfg.per or data.count_with_value(pairs, cfg.per, source):
        return cfg.per
    if cfg.data or cfg.per != RewardEvalConfig.per:
        keys = sorted({key for pair in pairs for key in pair.meta}) or ["none"]
        status(f'--per {cfg.per}: no row of {source} gives "{cfg.per}" a value, so there are no figures per value '
               f"(other keys of its rows: {', '.join(keys)})")
    return ""


def eval_main(cfg: RewardEvalConfig) -> dict:
    """Score held-out pairs: a file's, or the world's labelled as the reward model's training
    labels were (same annotator noise, length bias and draw)."""
    cfg.validate()
    device = pick_device(cfg.device)
    check_exists(cfg, "rm")
    out = check_out(cfg.out or run_directory(cfg.rm) / "eval", "a directory")
    model = load_reward_model(cfg.rm, device)
    trained = training_config(cfg.rm)
    trained = replace(trained, world_seed=trained.world_seed if cfg.world_seed is None else cfg.world_seed)
    world = annotated_world(trained)
    files = {}
    if cfg.data:
        heldout = {"heldout": data.load(cfg.data, "preference", model.tokenizer, model.config.context_len,
                                        cfg.on_invalid, cfg.overflow, files)[0]}
    else:
        heldout = world_heldout(trained, world)
    per = per_key(cfg, next(iter(heldout.values())))                 # the headline set's rows
    fresh_report_directory(out, "eval-rm", cfg, ("config.json", "metrics.json", "reliability.png"))
    metrics = {**evaluate.reward_report(model, [], heldout, world if not cfg.data else None, out, device, per),
               **({"data_files": files} if files else {})}
    write_json(out / "metrics.json", metrics)
    write_json(out / "config.json", recorded_config("eval-rm", cfg))   # last: which model and pairs these are of
    by_value = metrics.get(f"by_{per}") if per else None
    status(evaluate.table("reward model evaluation", {k: v for k, v in metrics.items() if k != f"by_{per}"})
           + (f"\n{evaluate.per_table(per, by_value)}" if by_value else "") + f"\nwritten to: {out}")
    return metrics


def main(cfg: RewardConfig) -> dict:
    metrics = train_reward(cfg)
    distributed.barrier()   # under torchrun: the next stage reads what rank 0 has just saved
    return metrics
