"""`rlhf lab advantage`: three advantage estimators against one reward model.

GAE with a learned critic (InstructGPT's PPO, the default), the textbook's running-mean
baseline, and RLOO's leave-one-out baseline over k answers to each prompt (Ahmadian et
al. 2024), each run from the shipped SFT model on the same number of episodes with the
same learning rate, β and clipping, then judged on the held-out prompts by the gold
judge. The critic-free two skip the critic's forward and backward passes, so their
wall time is part of the comparison.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from rlhf_lab.evaluate import compare, plot_runs
from rlhf_lab.lab.report import Report, lab_judging, lab_ppo, start, train_ppo_once, world_reward_model
from rlhf_lab.run import ConfigError, check_out, check_positive, check_range, read_json


@dataclass
class AdvantageConfig:
    out: str = "runs/lab/advantage"  # run directory: the reward model, one PPO run per estimator, report
    rm_pairs: int = 7000             # training pairs of the shared reward model
    iterations: int = 25             # PPO iterations per estimator (full run: under 10 min on 2 cores)
    rloo_k: int = 4                  # RLOO's answers per prompt (the batch holds 64 / k prompts)
    quick: bool = False              # a small version (tests, CI)
    device: str = "auto"             # "auto" | "cpu" | "cuda"

    def validate(self) -> None:
        check_out(self.out)
        check_positive(self, "rm_pairs", "iterations")
        check_range(self, "rloo_k", 2)
        batch = lab_ppo(self.iterations, self.quick, self.device, False).batch_size
        if batch % self.rloo_k:
            raise ConfigError(f"--rloo-k must divide the {batch} episodes of a PPO batch; got {self.rloo_k}")


def estimators(cfg: AdvantageConfig) -> dict[str, dict]:
    """Each estimator's PPOConfig overrides."""
    return {"GAE (critic)": dict(advantage="gae"), "running-mean baseline": dict(advantage="baseline"),
            f"RLOO, k = {cfg.rloo_k}": dict(advantage="rloo", samples_per_prompt=cfg.rloo_k)}


def main(cfg: AdvantageConfig) -> dict:
    out, resume = start(cfg, "lab advantage")
    rm = world_reward_model(out, cfg.rm_pairs, cfg.quick, cfg.device, resume)
    base = lab_ppo(cfg.iterations, cfg.quick, cfg.device, resume, rm=str(rm))
    judging = lab_judging(rm, cfg.quick, cfg.device)
    runs, rows, report = {}, [], Report("Advantage estimators: a critic, a running mean, a prompt's other answers", out)
    for i, (label, overrides) in enumerate(estimators(cfg).items()):
        runs[label] = run = out / f"estimator_{i}_{overrides['advantage']}"
        train_ppo_once(replace(base, out=str(run), **overrides))
        judged, _ = compare(replace(judging, policy=str(run)))
        trained = read_json(run / "metrics.json")
        report.figures[label] = {"ppo": trained, "eval": judged}
        rows.append([label, round(trained["wall_seconds"]), judged["gold_win_rate_vs_sft"], judged["gold_win_rate_se"],
                     judged["gold_mean_policy"], judged["style_mix_policy"]["ideal"], judged["kl_to_ref"]])
    plot_runs(runs, ["ppo/score", "ppo/gold", "ppo/kl"], out / "advantage.png", "proxy, gold and KL per estimator")
    report.say(f"{judged['prompts']} held-out prompts, {judged['comparisons']} comparisons with SFT per estimator "
               f"(gold mean of SFT {judged['gold_mean_sft']:.3f}).")
    report.say()
    report.table(["estimator", "PPO wall time (s)", "gold win rate", "± (s.e.)", "gold mean", "ideal share",
                  "KL (nats)"], rows)
    report.say("Finding: " + finding(rows))
    report.image("advantage.png", "proxy, gold and KL per iteration for each estimator")
    return report.write()


def finding(rows: list[list]) -> str:
    """Which estimator won, whether by more than the noise, and what the critic cost."""
    best, *rest = sorted(rows, key=lambda r: -r[2])
    runner_up = rest[0]
    gap, noise = best[2] - runner_up[2], 2 * (best[3] ** 2 + runner_up[3] ** 2) ** 0.5
    gae = rows[0]
    fastest = min(rows[1:], key=lambda r: r[1])
    return (f"the highest gold win rate, {best[2]:.3f}, came from {best[0]}, "
            + (f"ahead of {runner_up[0]} ({runner_up[2]:.3f}) by more than two standard errors of the difference "
               f"({noise:.3f})" if gap > noise else
               f"not clearly ahead of {runner_up[0]} ({runner_up[2]:.3f}): the gap is within two standard errors "
               f"of the difference ({noise:.3f})")
            + f"; without a critic, {fastest[0]} took {fastest[1]:.0f} s against GAE's {gae[1]:.0f} s.")
