"""`rlhf lab oracle`: PPO against a learned reward model and against the gold judge itself.

The gold judge as the reward (`rlhf ppo --reward gold`, D18) is an oracle: no reward-model
error is left, so what its policy reaches is the most PPO can do here with any reward model.
Both runs start from the shipped SFT model with the same settings and are judged on held-out
prompts and on the training prompts PPO draws from: where the oracle pulls ahead is what the
reward model costs; where even the oracle stalls is PPO's own limit, or the SFT model's.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from rlhf_lab.evaluate import compare, plot_runs
from rlhf_lab.lab.report import Report, lab_judging, lab_ppo, start, train_ppo_once, world_reward_model
from rlhf_lab.run import check_out, check_positive, read_json

SPLITS = {"held-out": "heldout_prompt", "training": "train"}


@dataclass
class OracleConfig:
    out: str = "runs/lab/oracle"   # run directory: the reward model, PPO against it and against gold, report
    rm_pairs: int = 7000           # training pairs of the learned reward model
    iterations: int = 40           # PPO iterations per run, as `rlhf ppo` (the full lab: under 10 min on 2 cores)
    quick: bool = False            # a small version (tests, CI)
    device: str = "auto"           # "auto" | "cpu" | "cuda"

    def validate(self) -> None:
        check_out(self.out)
        check_positive(self, "rm_pairs", "iterations")


def main(cfg: OracleConfig) -> dict:
    out, resume = start(cfg, "lab oracle")
    rm = world_reward_model(out, cfg.rm_pairs, cfg.quick, cfg.device, resume)
    base = lab_ppo(cfg.iterations, cfg.quick, cfg.device, resume)
    # as many training prompts as the held-out split has (137), so both columns carry the same noise
    judging = lab_judging(rm, cfg.quick, cfg.device, prompts=137)
    runs, rows, report = {}, [], Report("PPO against a learned reward model and against the gold judge", out)
    for reward, label in (("model", "reward model"), ("gold", "gold judge (oracle)")):
        runs[label] = run = out / f"ppo_{reward}"
        train_ppo_once(replace(base, out=str(run), reward=reward, **({"rm": str(rm)} if reward == "model" else {})))
        judged = {name: compare(replace(judging, policy=str(run), split=split))[0] for name, split in SPLITS.items()}
        report.figures[label] = {"ppo": read_json(run / "metrics.json"), "eval": judged}
        rows.append([label] + [v for name in SPLITS for v in (
            judged[name]["gold_win_rate_vs_sft"], judged[name]["gold_win_rate_se"], judged[name]["gold_mean_policy"],
            judged[name]["style_mix_policy"]["wrong"], judged[name]["slip_rate_policy"])]
                    + [judged["held-out"]["kl_to_ref"]])
    plot_runs(runs, ["ppo/score", "ppo/gold", "ppo/kl", "ppo/style_wrong"], out / "oracle.png",
              "PPO against a reward model and against gold")
    sft = {name: (judged[name]["style_mix_sft"]["wrong"], judged[name]["slip_rate_sft"])   # the same SFT
           for name in SPLITS}                                                              # answers in both runs
    report.say(f"{judged['held-out']['comparisons']} comparisons with SFT on held-out and on training prompts each; "
               "SFT answers wrongly {:.3f} of the time on held-out prompts (slips {:.3f}), {:.3f} on training "
               "prompts (slips {:.3f}).".format(*sft["held-out"], *sft["training"]))
    report.say()
    report.table(["reward", "held-out win", "±", "gold", "wrong", "slips", "training win", "±", "gold", "wrong",
                  "slips", "KL (nats)"], rows)
    report.say("Slips are wrong answers that name none of the fact's plausible wrong answers (a garbled name, "
               "another fact's answer): sampling noise, not the wrong style the SFT data teaches.")
    report.say("Finding: " + finding(*rows))
    report.image("oracle.png", "proxy score, gold, KL and wrong share per iteration against each reward")
    return report.write()


def finding(model: list, oracle: list) -> str:
    """Whether the oracle beats the reward model on each split by more than the noise, and how
    many of its own answers stay wrong on held-out against training prompts, and how many of
    those are slips. Rows as in main: label, then win, ±, gold, wrong, slips for held-out (1-5)
    and for training prompts (6-10), then KL."""
    def verdict(column: int, split: str) -> str:
        gap, noise = oracle[column] - model[column], 2 * (oracle[column + 1] ** 2 + model[column + 1] ** 2) ** 0.5
        return (f"on {split} prompts the oracle's policy wins {oracle[column]:.3f} against the reward model's "
                f"{model[column]:.3f}, {'a gap beyond' if abs(gap) > noise else 'within'} two standard errors "
                f"of the difference ({noise:.3f})")
    held_out, training = oracle[4], oracle[9]
    tail = (f"Even against gold, {held_out:.3f} of held-out answers stay wrong, against {training:.3f} on the "
            "prompts PPO trains on: what PPO corrects on its training prompts carries to unseen ones only in "
            "part, and no reward on the training prompts reaches the rest." if held_out > training + 0.05 else
            f"Against gold, the wrong share is {held_out:.3f} on held-out and {training:.3f} on training prompts.")
    slips = (f" Slips make up {oracle[5]:.3f} of the held-out answers and {oracle[10]:.3f} of the training ones.")
    return f"{verdict(1, 'held-out')}; {verdict(6, 'training')}. {tail}{slips}"
