"""`rlhf lab alignment-tax`: the facts PPO costs the SFT model, and PPO-ptx paying them back.

InstructGPT (Ouyang et al. 2022, §4.2) found that RLHF cost performance on public NLP tasks,
an "alignment tax", and paid it back by mixing pretraining gradients into PPO (PPO-ptx, eq. 2).
Here the tax is facts: decoded greedily the SFT model answers nearly every held-out prompt
rightly, and plain PPO forgets some of them while it learns the ideal form. Two PPO runs from
the shipped SFT model against one reward model, plain and with PPO-ptx on the SFT model's own
demonstrations (D20), are judged on held-out prompts greedily (what each model knows) and at
temperature 1 (what it says when sampled, as PPO and `rlhf eval` sample).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from rlhf_lab.evaluate import compare, plot_runs
from rlhf_lab.lab.report import Report, lab_judging, lab_ppo, start, train_ppo_once, world_reward_model
from rlhf_lab.run import check_out, check_positive, read_json

TEMPERATURES = {"greedy": 0.0, "sampled": 1.0}


@dataclass
class AlignmentTaxConfig:
    out: str = "runs/lab/alignment_tax"   # run directory: the reward model, both PPO runs, report
    rm_pairs: int = 7000                  # training pairs of the reward model both runs optimise
    iterations: int = 40                  # PPO iterations per run, as `rlhf ppo`
    ptx_coef: float = 1.0                 # γ of the PPO-ptx run (`rlhf ppo --ptx-coef`)
    quick: bool = False                   # a small version (tests, CI)
    device: str = "auto"                  # "auto" | "cpu" | "cuda"

    def validate(self) -> None:
        check_out(self.out)
        check_positive(self, "rm_pairs", "iterations", "ptx_coef")    # γ = 0 would run plain PPO twice


def main(cfg: AlignmentTaxConfig) -> dict:
    out, resume = start(cfg, "lab alignment-tax")
    rm = world_reward_model(out, cfg.rm_pairs, cfg.quick, cfg.device, resume)
    base = lab_ppo(cfg.iterations, cfg.quick, cfg.device, resume, rm=str(rm))
    judging = lab_judging(rm, cfg.quick, cfg.device)
    runs, report = {}, Report("The alignment tax: plain PPO against PPO-ptx", out)
    for label, coef in (("PPO", 0.0), (f"PPO-ptx, γ = {cfg.ptx_coef:g}", cfg.ptx_coef)):
        runs[label] = run = out / ("ppo_ptx" if coef else "ppo")
        train_ppo_once(replace(base, out=str(run), ptx_coef=coef))
        report.figures[label] = {"ppo": read_json(run / "metrics.json"), **{
            name: compare(replace(judging, policy=str(run), temperature=t))[0] for name, t in TEMPERATURES.items()}}
    plot_runs(runs, ["ppo/score", "ppo/gold", "ppo/kl", "ppo/style_wrong"], out / "alignment_tax.png",
              "plain PPO and PPO-ptx against one reward model")
    first = report.figures["PPO"]                        # SFT's answers are the same in both comparisons
    rows = [row("SFT", first["greedy"], first["sampled"], model="sft")] + [
        row(label, figures["greedy"], figures["sampled"]) for label, figures in report.figures.items()]
    report.say(f"{first['sampled']['comparisons']} comparisons with SFT on held-out prompts at "
               "temperature 1, one per prompt greedily; slips are wrong answers naming none of the fact's "
               "plausible wrong answers.")
    report.say()
    report.table(["model", "greedy gold", "greedy wrong", "win over SFT", "±", "gold", "wrong", "slips", "ideal",
                  "KL (nats)"], rows)
    report.say("Finding: " + finding(*rows))
    report.say()
    report.image("alignment_tax.png", "proxy score, gold, KL and wrong share per iteration of each run")
    return report.write()


def row(label: str, greedy: dict, sampled: dict, model: str = "policy") -> list:
    """A table row: greedy gold and wrong share, then at temperature 1 the win rate over SFT and
    its standard error (SFT's own row: none), gold, wrong, slips, ideal and KL to SFT."""
    win, se, kl = ((sampled["gold_win_rate_vs_sft"], sampled["gold_win_rate_se"], sampled["kl_to_ref"])
                   if model == "policy" else ("—", "—", "—"))
    return [label, greedy[f"gold_mean_{model}"], greedy[f"style_mix_{model}"]["wrong"], win, se,
            sampled[f"gold_mean_{model}"], sampled[f"style_mix_{model}"]["wrong"], sampled[f"slip_rate_{model}"],
            sampled[f"style_mix_{model}"]["ideal"], kl]


def finding(sft: list, plain: list, ptx: list) -> str:
    """The tax each run pays (its greedy wrong share above SFT's) and whether PPO-ptx's win rate
    at temperature 1 differs from plain PPO's beyond two standard errors of the difference.
    Rows as `row` makes them."""
    def tax(policy: list) -> str:
        return f"{policy[2]:.3f} of its greedy answers wrong ({policy[2] - sft[2]:+.3f} on SFT's {sft[2]:.3f})"
    gap, noise = ptx[3] - plain[3], 2 * (ptx[4] ** 2 + plain[4] ** 2) ** 0.5
    return (f"plain PPO leaves {tax(plain)}, PPO-ptx {tax(ptx)}; sampled, PPO-ptx's answers are wrong "
            f"{ptx[6]:.3f} of the time against plain PPO's {plain[6]:.3f}, and it wins {ptx[3]:.3f} over SFT "
            f"against {plain[3]:.3f}, {'a gap beyond' if abs(gap) > noise else 'within'} two standard errors of "
            f"the difference ({noise:.3f}).")
