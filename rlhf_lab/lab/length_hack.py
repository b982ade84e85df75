"""`rlhf lab length-hack`: optimise a flawed reward, len(response)/100, with and without a KL leash.

The textbook's example of reward hacking: a reward that pays for length is
maximised by long, repetitive, useless answers. β = 0 lets the policy run there;
β = 0.1 charges every nat it moves away from SFT. The gold judge shows the cost.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from rlhf_lab.evaluate import plot_runs
from rlhf_lab.lab.report import Report, lab_ppo, start, train_ppo_once
from rlhf_lab.rollout import Rollout
from rlhf_lab.run import ConfigError, check_out, check_positive, check_range, read_json


def length_reward(r: Rollout) -> torch.Tensor:
    """The flawed reward: one point per 100 bytes of answer."""
    return torch.tensor([len(text.encode()) / 100 for text in r.responses], device=r.tokens.device)


@dataclass
class LengthHackConfig:
    out: str = "runs/lab/length_hack"               # run directory: one PPO run per β, plots, report
    betas: list[float] = field(default_factory=lambda: [0.0, 0.1])  # KL coefficients compared
    iterations: int = 30                            # PPO iterations per run (full run: under 10 min on 2 cores)
    quick: bool = False                             # a small version (tests, CI)
    device: str = "auto"                            # "auto" | "cpu" | "cuda"

    def validate(self) -> None:
        check_out(self.out)
        check_range(self, "betas", 0.0)
        check_positive(self, "iterations")
        if len(set(self.betas)) < 2:
            raise ConfigError(f"--betas: give two or more different values to compare; got {self.betas}")


def samples(run: Path, n: int = 3) -> list[tuple[str, str]]:
    """The last iteration's first responses, kept by train_ppo in samples.json."""
    return [(s["prompt"], s["response"]) for s in read_json(run / "samples.json")[:n]]


def main(cfg: LengthHackConfig) -> dict:
    _, resume = start(cfg, "lab length-hack")
    base = lab_ppo(cfg.iterations, cfg.quick, cfg.device, resume, eos_penalty=0.0)
    runs, betas = {}, sorted(set(cfg.betas))          # the finding reads the loosest and the tightest leash
    for beta in betas:
        runs[f"β={beta}"] = Path(cfg.out) / f"beta_{beta}"
        train_ppo_once(replace(base, out=str(runs[f"β={beta}"]), kl_coef=beta), reward_fn=length_reward)
    report = Report("Reward hacking: a length reward with and without the KL leash", Path(cfg.out))
    plot_runs(runs, ["ppo/response_len", "ppo/score", "ppo/gold", "ppo/kl"], report.out / "length_hack.png",
              "PPO on len(response)/100")
    rows = []
    for label, run in runs.items():
        final = read_json(run / "metrics.json")
        report.figures[label] = final
        rows.append([label, final["response_len"], final["score"], final["gold"], final["kl"],
                     final["style_repetitive"], final["style_ideal"]])
    report.table(["run", "length (bytes)", "proxy", "gold", "KL (nats)", "repetitive share", "ideal share"], rows)
    free, leashed = rows[0], rows[-1]
    loosest = "without a leash (β=0)" if betas[0] == 0 else f"with the loosest leash (β={betas[0]})"
    report.say(f"Finding: {loosest} answers grew to {free[1]:.0f} bytes with gold "
               f"{free[3]:.2f} at KL {free[4]:.1f} nats; with β={betas[-1]} they reached {leashed[1]:.0f} bytes, "
               f"gold {leashed[3]:.2f}, KL {leashed[4]:.1f}. "
               + ("The leash kept the policy closer to SFT and the gold score higher."
                  if leashed[3] > free[3] and leashed[4] < free[4] else
                  "Here the leash did not protect the gold score; see the curves."))
    report.image("length_hack.png", "length, proxy, gold and KL per iteration")
    for label, run in runs.items():
        report.say(f"Samples at the end, {label}:")
        report.table(["prompt", "response"], [[p, r.replace("\n", "⏎").replace("|", "\\|")] for p, r in samples(run)])
    return report.write()
