"""`rlhf lab annotator-bias`: annotators who like a flaw, and the reward hack PPO builds from it.

Human raters prefer some things that are not better answers: markdown structure (format
gaming), hedges that read as care, and flattery or agreement with what the user believes
(sycophancy; Sharma et al. 2023 find it in human preference data and in the reward models
trained on it). Each run gives the world's annotators one such bias (an extra utility for an
answer the gold judge reads with that trait), trains a reward model on their labels, runs
PPO against it from the shipped SFT model, and judges the policy against SFT on held-out
prompts: the trait's share, the proxy reward and the gold score, side by side. With `--ensemble K`
each reward model is a conservative ensemble (Coste et al. 2024), a guard against one model's
errors; every member learns the same annotators' taste, which the ensemble does not undo.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from rlhf_lab.evaluate import compare, plot_runs
from rlhf_lab.lab.report import Report, lab_judging, lab_ppo, start, train_ppo_once, world_reward_model
from rlhf_lab.reward import check_ensemble_spread, ensemble_settings
from rlhf_lab.run import (
    ConfigError, check_choice, check_non_negative, check_numbers, check_out, check_positive, read_json)

TRAIT_STYLE = {"format": "formatted", "hedging": "hedging", "sycophancy": "sycophantic"}  # bias → style it pays


@dataclass
class AnnotatorBiasConfig:
    out: str = "runs/lab/annotator_bias"   # run directory: a reward model and a PPO run per bias, report
    biases: list[str] = field(default_factory=lambda: list(TRAIT_STYLE))  # "format" | "hedging" | "sycophancy"
    strength: float = 1.0                  # annotators' extra utility for the trait; gold scores a correct answer
                                           # with it 0.3-0.7 below the ideal (the trait's penalty and the extra
                                           # bytes'), so at 1.0 such an answer outranks the ideal one
    rm_pairs: int = 7000                   # training pairs of each reward model
    ensemble: int = 1                      # members per reward model (different seeds and data orders)
    ensemble_std_coef: float = 1.0         # with --ensemble K > 1, PPO's reward is mean − k·std of the members
    iterations: int = 25                   # PPO iterations per bias (the full lab: about 9 min on 2 cores)
    quick: bool = False                    # a small version (tests, CI)
    device: str = "auto"                   # "auto" | "cpu" | "cuda"

    def validate(self) -> None:
        check_numbers(self)
        check_out(self.out)
        if not self.biases:
            raise ConfigError(f"--biases needs at least one of {', '.join(TRAIT_STYLE)}")
        for bias in self.biases:
            check_choice("biases", bias, tuple(TRAIT_STYLE))
        check_positive(self, "rm_pairs", "ensemble", "iterations")
        check_non_negative(self, "ensemble_std_coef")
        check_ensemble_spread(self)


def measure(cfg: AnnotatorBiasConfig, bias: str, resume: bool) -> tuple[Path, list, dict]:
    """A reward model from annotators with this bias, PPO against it, and the policy judged against
    SFT on held-out prompts: the PPO run, its row of the report's table, and its figures (resume:
    report.start's verdict)."""
    rm = world_reward_model(Path(cfg.out), cfg.rm_pairs, cfg.quick, cfg.device, resume, f"rm_{bias}",
                            **ensemble_settings(cfg.ensemble, cfg.ensemble_std_coef),
                            **{f"{bias}_bias": cfg.strength})
    run = Path(cfg.out) / f"ppo_{bias}"
    train_ppo_once(replace(lab_ppo(cfg.iterations, cfg.quick, cfg.device, resume), rm=str(rm), out=str(run)))
    judged = compare(replace(lab_judging(rm, cfg.quick, cfg.device), policy=str(run)))[0]
    rm_metrics, style = read_json(rm / "metrics.json"), TRAIT_STYLE[bias]
    row = [bias, rm_metrics["heldout_gold_accuracy"], judged["style_mix_sft"][style], judged["style_mix_policy"][style],
           judged["proxy_mean_sft"], judged["proxy_mean_policy"], judged["gold_mean_sft"], judged["gold_mean_policy"],
           judged["gold_win_rate_vs_sft"], judged["gold_win_rate_se"], judged["kl_to_ref"]]
    return run, row, {"reward_model": rm_metrics, "ppo": read_json(run / "metrics.json"), "eval": judged}


def main(cfg: AnnotatorBiasConfig) -> dict:
    out, resume = start(cfg, "lab annotator-bias")
    report = Report("Annotator biases: format gaming, hedging and sycophancy learned from preferences", out)
    runs, rows = {}, []
    for bias in cfg.biases:
        runs[bias], row, report.figures[bias] = measure(cfg, bias, resume)
        rows.append(row)
    plot_runs(runs, ["ppo/score", "ppo/gold"] + [f"ppo/style_{TRAIT_STYLE[b]}" for b in cfg.biases],
              out / "annotator_bias.png", f"PPO against reward models from biased annotators (+{cfg.strength})")
    comparisons = report.figures[cfg.biases[0]]["eval"]["comparisons"]
    members = (f", each an ensemble of {cfg.ensemble} scored as mean − {cfg.ensemble_std_coef}·std"
               if cfg.ensemble > 1 else "")
    report.say(f"Each reward model learned from annotators who add {cfg.strength} to an answer with the trait"
               f"{members}; judged on {comparisons} held-out comparisons with the SFT model.")
    report.say()
    report.table(["bias", "RM agrees with gold", "trait share, SFT", "policy", "proxy, SFT", "policy",
                  "gold, SFT", "policy", "gold win rate", "±", "KL (nats)"], rows)
    report.say("Finding: " + " ".join(finding(row) for row in rows))
    report.image("annotator_bias.png", "proxy, gold and each trait's share per PPO iteration, one line per bias")
    return report.write()


def finding(row: list) -> str:
    """One bias's verdict from its row (as in main): whether the trait spread (its share rose by
    more than 0.1) and, if so, where gold ended against SFT, two standard errors deciding."""
    bias, _, trait_sft, trait_policy, proxy_sft, proxy_policy, gold_sft, gold_policy, win, se, _ = row
    style = TRAIT_STYLE[bias]
    moved = (f"{bias}: the {style} share went from {trait_sft:.3f} to {trait_policy:.3f}, the proxy from "
             f"{proxy_sft:.2f} to {proxy_policy:.2f}, gold from {gold_sft:.3f} to {gold_policy:.3f} "
             f"(win rate {win:.3f} ± {se:.3f})")
    if trait_policy < trait_sft + 0.1:
        return moved + "; the bias did not take over at this strength and length of run."
    against_sft = ("below SFT: the hack cost more than PPO gained elsewhere" if win + 2 * se < 0.5 else
                   "still above SFT, from the other flaws the annotators did penalise, though each "
                   f"{style} answer costs gold 0.3" if win - 2 * se > 0.5 else "level with SFT")
    return f"{moved}: the policy learned the annotators' taste, and ended {against_sft}."
