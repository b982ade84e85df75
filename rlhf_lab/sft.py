"""Stage 1, supervised fine-tuning: prompt → response with the loss on response tokens only.

The world's default SFT mix deliberately holds every style (30% ideal, the rest
padded, hedging, wrong, repetitive, over-formatted, sycophantic), as real
demonstration data does: the SFT model learns to answer, but imitates good and
bad answers alike. Telling them apart is the reward model's job (Ouyang et al. 2022).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from rlhf_lab import data, distributed, evaluate, optim
from rlhf_lab.model import CausalLM, GPTConfig, MiniGPT, SamplingConfig
from rlhf_lab.run import (
    PRECISIONS, ConfigError, Run, autocast, check_choice, check_exists, check_non_negative, check_numbers,
    check_positive, check_range, check_unused, check_world_only, compile_if, flags_off_default, load_model,
    pick_device, progress, resume_step, save_model, save_train_state, seed_everything, status)
from rlhf_lab.tokenizer import Tokenizer
from rlhf_lab.world import World, WorldConfig, check_context_fits, ideal_mix


@dataclass
class SFTConfig:
    out: str = "runs/sft"          # run directory
    init: str = ""                 # start from this model, not a fresh MiniGPT: a run directory or a Hugging Face
                                   # save_pretrained directory, whose own shape, context and tokenizer apply
    data: str = ""                 # SFT JSONL (prompt/response); empty → the assistant world
    eval_data: str = ""            # JSONL for the eval loss; empty → the world's held-out prompts, or with
                                   # --data the --heldout-share of its prompts, which are then not trained on
    heldout_share: float = 0.1     # with --data and no --eval-data: share of the file's prompts held out (fixed
                                   # by a hash of each prompt: train-rm holds out the same ones as validation pairs);
                                   # at least one prompt, 0 included, so that there is an eval loss
    world_seed: int = 0            # the world's facts, splits and phrasings
    ideal_share: float = 0.30      # world SFT mix: ideal share, the rest split over 6 failure styles
    examples: int = 96000          # world SFT examples drawn (each seen twice on average, batches drawn with
                                   # replacement; fewer overfit, docs/sft.md)
    steps: int = 6000              # optimizer steps (the shipped checkpoint: 17 min on 2 Xeon cores, 24 on 2 EPYC)
    batch_size: int = 32           # sequences per step
    lr: float = 3e-3               # peak learning rate (AdamW's; Muon's is scaled to match it)
    optimizer: str = "adamw"       # "adamw" | "muon": Muon on the hidden matrices, AdamW on the rest (docs/sft.md)
    warmup: int = 100              # linear warmup steps (a tenth of the run if not shorter)
    weight_decay: float = 0.1      # AdamW weight decay on matrices (nanoGPT)
    grad_clip: float = 1.0         # global gradient-norm clip
    eval_every: int = 500          # steps between eval-loss passes and checkpoints (a kill loses fewer)
    eval_samples: int = 512        # answers sampled for well_formed_rate / style_mix, on held-out prompts in turn
                                   # and again on training prompts (the world's only: its judge says nothing of
                                   # a file's examples)
    on_invalid: str = "error"      # bad JSONL rows: "error" | "skip" (counted, reported)
    overflow: str = "error"        # rows longer than the context: "error" | "skip" | "truncate"
                                   # (cuts the prompt's oldest bytes; a row whose answer leaves its
                                   # prompt under 16 tokens is skipped)
    context_len: int = 256         # model context, bytes
    width: int = 128               # model width (textbook default)
    n_layers: int = 4              # transformer blocks
    n_heads: int = 4               # attention heads
    ffn: int = 512                 # feed-forward size
    seed: int = 0                  # init, batch order and sampling
    device: str = "auto"           # "auto" | "cpu" | "cuda"
    precision: str = "fp32"        # "fp32" | "bf16" autocast (faster with AMX or wide models: docs/benchmarks.md)
    compile: bool = False          # torch.compile the blocks (slower at width 128, docs/benchmarks.md)
    resume: bool = True            # continue from out/train_state.safetensors if present

    def validate(self) -> None:
        check_numbers(self)
        check_choice("precision", self.precision, PRECISIONS)
        optim.check_optimizer(self.optimizer)
        data.check_read_options(self, "data", "eval_data")
        check_positive(self, "examples", "steps", "batch_size", "lr", "eval_every", "eval_samples", "context_len",
                       "grad_clip", "width", "n_layers", "n_heads", "ffn")
        check_range(self, "ideal_share", 0.0, 1.0)
        check_range(self, "heldout_share", 0.0, 1.0)    # 0: the one prompt of the lowest key (data.split_heldout)
        check_non_negative(self, "warmup", "weight_decay")
        if self.width % self.n_heads:
            raise ConfigError(f"--width must be a multiple of --n-heads; got {self.width} and {self.n_heads}")
        check_world_only(self, ("world_seed", "ideal_share", "examples", "eval_samples"))
        check_unused(self, ("heldout_share",), not self.data or bool(self.eval_data), "hold",
                     "out a --data file's prompts for the eval loss when no --eval-data is given")
        if self.init:
            shaped = flags_off_default(self, SHAPE_OPTIONS)
            if shaped:
                raise ConfigError(f"--init {self.init} brings its own shape and context; drop {', '.join(shaped)}")
        elif not self.data:
            check_context_fits(self.context_len)

    def gpt_config(self) -> GPTConfig:
        return GPTConfig(context_len=self.context_len, width=self.width, n_layers=self.n_layers,
                         n_heads=self.n_heads, ffn=self.ffn)


SHAPE_OPTIONS = ("context_len", "width", "n_layers", "n_heads", "ffn")   # a fresh model's; --init brings its own


def initial_model(cfg: SFTConfig, device) -> CausalLM:
    """The model SFT trains: --init's, or a fresh MiniGPT of the configured shape."""
    if not cfg.init:
        return MiniGPT(cfg.gpt_config()).to(device)
    check_exists(cfg, "init")
    return load_model(cfg.init, device)


def world_examples(world: World, split: str, n: int, seed: int) -> list[data.SFTExample]:
    """n of the world's SFT demonstrations on a split's prompts, in its style mix."""
    return [data.SFTExample(r["prompt"], r["response"]) for r in world.sft_examples(split, n, seed)]


def encode_examples(tok: Tokenizer, examples: list[data.SFTExample]) -> list[tuple[list[int], int]]:
    """(tokens, first response index) per example."""
    return [tok.encode_pair(e.prompt, e.response) for e in examples]


def make_batch(tok: Tokenizer, encoded: list[tuple[list[int], int]], device) -> tuple[Tensor, Tensor]:
    """Right-padded inputs (B, T-1) and targets (B, T-1), with -100 off the response."""
    tokens, _, answer_mask = tok.right_pad_examples(encoded)
    targets = tokens.masked_fill(~answer_mask, -100)
    return tokens[:, :-1].to(device), targets[:, 1:].to(device)


def response_loss(model: CausalLM, inputs: Tensor, targets: Tensor, tokens_per_batch: float | None = None) -> Tensor:
    """Next-token cross-entropy summed over response tokens (and EOS), divided by
    tokens_per_batch: the training set's mean count per batch, so every token weighs the
    same in every batch (None: this batch's own count, a plain mean).

    Why not the plain mean in training: batches are cut from length-sorted pools
    (batch_indices), and a batch's own mean gives each token the weight 1/(tokens in its
    batch). Batches of short answers, mostly the ideal style, then count for more, and the
    model learns a style mix tilted towards them: per-batch weights put the ideal style at
    0.42 of the per-answer weight for a 0.30 share of the data, and a model trained so
    sampled the ideal style 0.416 of the time (548 answers to training prompts)."""
    logits = model(inputs)                                                   # (B, T, V)
    total = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100, reduction="sum")
    return total / (tokens_per_batch or (targets != -100).sum().clamp(min=1))


def mean_tokens_per_batch(encoded: list[tuple[list[int], int]], batch_size: int) -> float:
    """Loss tokens (response + EOS) in an average batch of `batch_size` examples."""
    return batch_size * sum(len(tokens) - start for tokens, start in encoded) / len(encoded)


POOL = 4   # batches drawn together, then split by length (82% of tokens real; deeper pools learn slower)


def batch_indices(lengths: list[int], batch_size: int, seed: int, step: int) -> list[int]:
    """One step's examples. POOL batches' worth are drawn at random together, sorted
    by length and cut into POOL batches, so each batch carries little padding yet
    stays a random sample (windows over a length-sorted list learned far slower:
    same-length examples are mostly one family and style). A function of
    (seed, step) alone, so a resumed run sees the same batches."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step // POOL)
    pool = torch.randint(len(lengths), (POOL * batch_size,), generator=generator).tolist()
    pool.sort(key=lambda i: lengths[i])
    part = step % POOL
    return pool[part * batch_size:(part + 1) * batch_size]


@torch.no_grad()
def eval_loss(model: CausalLM, encoded: list, device, batch_size: int = 64) -> float:
    """Mean cross-entropy per response token (and EOS) over all of `encoded`, in batches: every
    token weighs the same, a smaller last batch no more than the others."""
    model.eval()
    total = sum(response_loss(model, *make_batch(model.tokenizer, encoded[i:i + batch_size], device), 1.0).item()
                for i in range(0, len(encoded), batch_size))
    model.train()
    return total / sum(len(tokens) - start for tokens, start in encoded)


def load_data(cfg: SFTConfig, world: World, model: CausalLM) -> tuple[list, list, dict[str, dict]]:
    """Training and eval examples, from JSONL files (each row checked to fit the model) or drawn
    from the world, and what loading each file kept and skipped."""
    files, fit = {}, (model.tokenizer, model.config.context_len)
    if cfg.data:
        train, _ = data.load(cfg.data, "sft", *fit, cfg.on_invalid, cfg.overflow, files)
    else:
        train = world_examples(world, "train", cfg.examples, cfg.seed)
    if cfg.eval_data:
        heldout, _ = data.load(cfg.eval_data, "sft", *fit, cfg.on_invalid, cfg.overflow, files)
    elif cfg.data:
        train, heldout = data.split_heldout(train, cfg.heldout_share, cfg.data)
        heldout = heldout[:MAX_EVAL]                    # all held out of training, at most MAX_EVAL measured
    else:
        heldout = world_examples(world, "heldout_prompt", 512, cfg.seed + 1)
    return distributed.shard(train, "training examples"), heldout, files


MAX_EVAL = 512   # held-out examples of a --data file whose eval loss is measured (the first ones)


def world_for(cfg: SFTConfig) -> World:
    return World(WorldConfig(seed=cfg.world_seed, sft_style_mix=ideal_mix(cfg.ideal_share)))


def train_sft(cfg: SFTConfig) -> dict:
    """Train, evaluate and save; returns the final metrics (also in out/metrics.json)."""
    cfg.validate()
    device = pick_device(cfg.device)
    distributed.init(device)
    seed_everything(cfg.seed)
    world = world_for(cfg)
    model = initial_model(cfg, device)                         # a bad --init stops before any write
    if cfg.init and not cfg.data:
        check_context_fits(model.config.context_len, model.tokenizer, cfg.init)
    train, heldout, files = load_data(cfg, world, model)       # a bad file too
    run = Run(cfg.out, "sft", cfg, files)
    if run.finished:
        return run.finished_metrics()
    encoded, encoded_eval = (encode_examples(model.tokenizer, rows) for rows in (train, heldout))
    compile_if(cfg.compile, model)
    ddp_model = distributed.wrap(model)
    optimizer = optim.make_optimizer(cfg.optimizer, [model], cfg.lr, cfg.weight_decay)
    start = resume_step(run, cfg, {"model": model}, optimizer)
    with autocast(device, cfg.precision):
        train_loop(cfg, run, model, ddp_model, optimizer, start, encoded, encoded_eval, device)
        return finish(cfg, run, model, world, encoded_eval, device)


def train_loop(cfg: SFTConfig, run: Run, model: CausalLM, ddp_model, optimizer, start: int,
               encoded, encoded_eval, device) -> None:
    lengths = [len(tokens) for tokens, _ in encoded]
    tokens_per_batch = mean_tokens_per_batch(encoded, cfg.batch_size)
    bar, tick, since = progress(cfg.steps, "sft", start), time.perf_counter(), start
    # the logged training loss is per loss token over every step since the last log: one batch's
    # would be biased, since batches are length-sorted quarters of a pool (batch_indices) and a log
    # step every POOL-th step always lands on the longest quarter (1.3x the eval loss at the end)
    window_loss, window_tokens = 0.0, 0
    for step in range(start, cfg.steps):
        optim.set_lr(optimizer, optim.lr_at(step, cfg.steps, cfg.lr, cfg.warmup))
        batch = [encoded[i] for i in batch_indices(lengths, cfg.batch_size, cfg.seed, step)]
        loss = response_loss(ddp_model, *make_batch(model.tokenizer, batch, device), tokens_per_batch)
        loss.backward()
        grad_norm = optim.clip_and_step(optimizer, [model], cfg.grad_clip, f"sft step {step + 1}")
        window_loss += loss.item() * tokens_per_batch                       # the batch's summed cross-entropy
        window_tokens += sum(len(tokens) - first for tokens, first in batch)
        bar.update()
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            ms = 1000 * (time.perf_counter() - tick) / (step + 1 - since)          # a resumed or last window is shorter
            metrics = {**distributed.all_mean({"sft/loss": window_loss / window_tokens}), "sft/grad_norm": grad_norm,
                       "sft/eval_loss": eval_loss(model, encoded_eval, device), "ms_per_step": ms}
            window_loss, window_tokens = 0.0, 0
            run.log(step + 1, metrics)
            status(f"sft {step + 1}/{cfg.steps} | loss {metrics['sft/loss']:.3f} | "
                   f"eval {metrics['sft/eval_loss']:.3f} | {ms:.0f} ms/it")
            if distributed.is_main():
                save_train_state(run.path / "train_state.safetensors", {"model": model}, optimizer, step + 1,
                                 run.seconds())
            tick, since = time.perf_counter(), step + 1
    bar.close()


def finish(cfg: SFTConfig, run: Run, model: CausalLM, world: World, encoded_eval, device) -> dict:
    """Save the weights, sample on held-out and training prompts, judge, write metrics.json and a plot."""
    if not distributed.is_main():
        return {}
    save_model(run.path / "model.safetensors", model)
    metrics = {"eval_loss": eval_loss(model, encoded_eval, device), "steps": cfg.steps}
    if not cfg.data:   # the world's mix and judge say nothing about a file's examples
        metrics.update(world_figures(cfg, model, world))
    evaluate.plot_history(run, ["sft/loss", "sft/eval_loss"], "SFT loss", "sft_loss.png")
    metrics = run.finish(metrics)
    status(evaluate.table("SFT", metrics) + f"\nrun directory: {run.path}")
    return metrics


def world_figures(cfg: SFTConfig, model: CausalLM, world: World) -> dict:
    """cfg.eval_samples answers sampled at temperature 1 and judged, on held-out prompts (137 in
    the default world, each answered several times) and, under "train_prompts", on prompts spread
    over the training split. There a model that learned its data samples the training mix back;
    style_mix_gap, the largest difference of a style's share from that mix, says how closely. On
    held-out prompts the gap is wider, by the facts the model misspells on prompts it never saw."""
    mix, n = world.cfg.sft_style_mix, cfg.eval_samples
    heldout, train = world.prompts("heldout_prompt"), world.prompts("train")
    on_heldout = judged_answers(model, world, [heldout[i % len(heldout)] for i in range(n)], mix, cfg.seed)
    on_train = judged_answers(model, world, [train[i * len(train) // n] for i in range(n)], mix, cfg.seed)
    return {"training_style_mix": mix, **on_heldout, "eval_answers": n, "train_prompts": on_train}


def judged_answers(model: CausalLM, world: World, prompts: list[str], mix: dict[str, float], seed: int) -> dict:
    judged = evaluate.sample_and_judge(model, world, prompts, SamplingConfig(), seed)
    return judged | {"style_mix_gap": max(abs(judged["style_mix"][style] - share) for style, share in mix.items())}


def main(cfg: SFTConfig) -> dict:
    metrics = train_sft(cfg)
    distributed.barrier()   # under torchrun: the next stage reads what rank 0 has just saved
    return metrics
