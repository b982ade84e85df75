"""`rlhf lab multi-objective`: annotators who like long answers, and a second objective against it.

A helpfulness reward model learned from length-biased annotators pays for padding
(the verbosity trap). Mixing in a concision reward, R = 0.7·R_helpful + 0.3·R_concise,
is the textbook's multi-objective fix. Both policies are judged by the gold judge.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from rlhf_lab.evaluate import plot_runs
from rlhf_lab.lab.report import Report, lab_ppo, reward_model_once, start, train_ppo_once
from rlhf_lab.model import SamplingConfig
from rlhf_lab.ppo import RewardFn, model_reward
from rlhf_lab.reward import RewardConfig, load_reward_model
from rlhf_lab.rollout import Rollout, sample_texts
from rlhf_lab.run import (
    SHIPPED, check_numbers, check_out, check_positive, check_range, load_model, pick_device, read_json, read_log)
from rlhf_lab.world import STYLES, World


@dataclass
class MultiObjectiveConfig:
    out: str = "runs/lab/multi_objective"  # run directory: the biased reward model, two PPO runs, report
    length_bias: float = 2.0               # annotators' extra utility per 100 bytes (2: padded beats ideal)
    helpful_weight: float = 0.7            # R = w·R_helpful + (1 − w)·R_concise
    rm_pairs: int = 7000                   # training pairs of the biased reward model
    iterations: int = 30                   # PPO iterations per run (full run: under 10 min on 2 cores)
    quick: bool = False                    # a small version (tests, CI)
    device: str = "auto"                   # "auto" | "cpu" | "cuda"

    def validate(self) -> None:
        check_numbers(self)
        check_out(self.out)
        check_range(self, "helpful_weight", 0.0, 1.0)
        check_positive(self, "rm_pairs", "iterations")


def concision_reward(sft_lengths: list[int]) -> RewardFn:
    """Shorter is better, standardised on the SFT model's answer lengths (mean 0, std 1 there)."""
    mean, std = statistics.mean(sft_lengths), statistics.pstdev(sft_lengths) or 1.0

    def score(r: Rollout) -> torch.Tensor:
        return torch.tensor([-(len(t.encode()) - mean) / std for t in r.responses], device=r.tokens.device)
    return score


def mixture(parts: list[tuple[float, RewardFn]]) -> RewardFn:
    def score(r: Rollout) -> torch.Tensor:
        return sum(w * fn(r) for w, fn in parts)
    return score


def main(cfg: MultiObjectiveConfig) -> dict:
    _, resume = start(cfg, "lab multi-objective")
    out, device = Path(cfg.out), pick_device(cfg.device)
    rm_cfg = RewardConfig(out=str(out / "rm_length_biased"), length_bias=cfg.length_bias, device=cfg.device,
                          resume=resume, **(dict(pairs=256, epochs=1, norm_samples=64, heldout_pairs=100) if cfg.quick
                                           else dict(pairs=cfg.rm_pairs)))
    rm_metrics = read_json(reward_model_once(rm_cfg) / "metrics.json")
    helpful = model_reward(load_reward_model(rm_cfg.out, device).eval())
    prompts = World().prompts("train")[:64 if cfg.quick else 256]
    lengths = [len(t.encode()) for t in sample_texts(load_model(SHIPPED, device), prompts, SamplingConfig())]
    rewards = {"helpful only": helpful,
               f"{cfg.helpful_weight:g}·helpful + {1 - cfg.helpful_weight:g}·concise":
                   mixture([(cfg.helpful_weight, helpful), (1 - cfg.helpful_weight, concision_reward(lengths))])}
    base = lab_ppo(cfg.iterations, cfg.quick, cfg.device, resume)
    runs = {label: out / f"ppo_{i}" for i, label in enumerate(rewards)}
    for label, fn in rewards.items():
        train_ppo_once(replace(base, out=str(runs[label])), reward_fn=fn)
    return write_report(cfg, runs, rm_metrics)


def drifted(row: list, sft: dict) -> bool:
    """The verbosity trap: answers over 10% longer than SFT's, or 5 more points of verbose share."""
    return row[2] > 1.1 * sft["ppo/response_len"] or row[4] > sft["ppo/style_verbose"] + 0.05


def trap_verdict(alone: list, mixed: list, sft: dict) -> str:
    """Whether mixing in concision avoided the verbosity trap, from the two runs' rows (reward,
    gold, length, style shares...) and SFT's first-rollout log record."""
    if not drifted(alone, sft):
        return "The biased reward did not pull answers longer here, so there was no trap to avoid."
    if not drifted(mixed, sft):
        return "The concision term avoided the verbosity trap."
    if mixed[1] <= alone[1]:
        return "The mixture did not beat the biased reward on gold here."
    return ("The mixture beat the biased reward on gold but did not avoid the trap at this bias and weight: its "
            + ("answers also drifted longer, if less far." if mixed[2] < alone[2] else
               "answers drifted at least as long."))


def write_report(cfg: MultiObjectiveConfig, runs: dict[str, Path], rm_metrics: dict) -> dict:
    out = Path(cfg.out)
    report = Report("Multi-objective reward against the verbosity trap", out,
                    {"reward_model": {k: rm_metrics[k] for k in ("heldout_gold_accuracy", "length_baseline_accuracy")}})
    plot_runs(runs, ["ppo/gold", "ppo/response_len", "ppo/style_ideal", "ppo/style_verbose"],
              out / "multi_objective.png", "length-biased reward, alone and mixed with concision")
    rows = []
    for label, run in runs.items():
        final = read_json(run / "metrics.json")
        report.figures[label] = final
        rows.append([label, final["gold"], final["response_len"]] + [final[f"style_{s}"] for s in STYLES])
    report.table(["reward", "gold", "length", *STYLES], rows)
    alone, mixed = rows
    sft = read_log(next(iter(runs.values())))[0]          # the first rollout: the SFT policy itself
    report.say(f"Finding: annotators with a length bias of {cfg.length_bias} per 100 bytes produced a reward model "
               f"that agrees with gold on {rm_metrics['heldout_gold_accuracy']:.3f} of held-out pairs. From SFT's "
               f"{sft['ppo/response_len']:.0f} bytes (verbose share {sft['ppo/style_verbose']:.2f}, gold "
               f"{sft['ppo/gold']:.2f}), optimising it alone led to {alone[2]:.0f} bytes, verbose share {alone[4]:.2f}, "
               f"gold {alone[1]:.2f}; mixed with concision, {mixed[2]:.0f} bytes, verbose share {mixed[4]:.2f}, "
               f"gold {mixed[1]:.2f}. " + trap_verdict(alone, mixed, sft))
    report.image("multi_objective.png", "gold, length and style shares per iteration")
    return report.write()
