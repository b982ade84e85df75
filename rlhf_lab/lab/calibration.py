"""`rlhf lab calibration`: is the reward model's confidence honest on pairs it never saw?

σ(r_c − r_r) is the model's probability that the chosen answer wins. Calibrated, it
matches how often it is right. Seen (training) pairs, unseen prompts, unseen
phrasings and unseen facts are compared on one reliability diagram.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from rlhf_lab.evaluate import calibration_noise_floor, expected_calibration_error, pair_accuracy, pyplot
from rlhf_lab.lab.report import Report, start
from rlhf_lab.reward import RewardConfig, load_pairs, load_reward_model, score_pairs, train_reward
from rlhf_lab.run import check_out, check_positive, pick_device, save_figure
from rlhf_lab.world import annotated_world


@dataclass
class CalibrationConfig:
    out: str = "runs/lab/calibration"  # run directory: the reward model, plots, report
    pairs: int = 28000                 # training pairs of the reward model
    quick: bool = False                # a small version (tests, CI)
    device: str = "auto"               # "auto" | "cpu" | "cuda"

    def validate(self) -> None:
        check_out(self.out)
        check_positive(self, "pairs")


def measure(cfg: CalibrationConfig, resume: bool) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Train a reward model (resume: report.start's verdict), then score seen and unseen pairs:
    name → (chosen, rejected)."""
    rm_cfg = RewardConfig(out=str(Path(cfg.out) / "rm"), pairs=256 if cfg.quick else cfg.pairs,
                          epochs=1 if cfg.quick else 2, norm_samples=64 if cfg.quick else 256,
                          heldout_pairs=100 if cfg.quick else RewardConfig.heldout_pairs,
                          device=cfg.device, resume=resume)
    train_reward(rm_cfg)
    device = pick_device(cfg.device)
    model = load_reward_model(rm_cfg.out, device)
    train, heldout, _ = load_pairs(rm_cfg, annotated_world(rm_cfg), model.tokenizer, model.config.context_len)
    sets = {"seen (training pairs)": train[:rm_cfg.heldout_pairs], **{f"unseen: {k.removeprefix('heldout_')}": v
                                                       for k, v in heldout.items()}}
    return {name: score_pairs(model, pairs, device, raw=True) for name, pairs in sets.items()}   # log-odds scale


def main(cfg: CalibrationConfig) -> dict:
    _, resume = start(cfg, "lab calibration")
    scored = measure(cfg, resume)
    report = Report("Reward-model calibration: seen versus unseen pairs", Path(cfg.out))
    plt = pyplot()
    fig, (rel, hist) = plt.subplots(1, 2, figsize=(9, 3.8))
    rel.plot([0.5, 1], [0.5, 1], "k--", label="perfect")
    rows = []
    for name, (chosen, rejected) in scored.items():
        ece, bins = expected_calibration_error(chosen, rejected)
        floor, margin = calibration_noise_floor(chosen, rejected), chosen - rejected
        report.figures[name] = {"accuracy": pair_accuracy(chosen, rejected), "ece": ece, "ece_noise_floor": floor,
                                "mean_margin": margin.mean().item(), "pairs": len(margin)}
        rows.append([name, report.figures[name]["accuracy"], ece, floor, margin.mean().item(), len(margin)])
        rel.plot([b[0] for b in bins], [b[1] for b in bins], "o-", label=name)
        hist.hist(margin.numpy(), bins=40, alpha=0.5, label=name)
    rel.set(xlabel="confidence", ylabel="accuracy (vs labels)", title="reliability")
    rel.legend(fontsize=7)
    hist.set(xlabel="margin r_c − r_r", ylabel="pairs", title="margins")
    fig.tight_layout()
    save_figure(fig, report.out / "calibration.png")
    plt.close(fig)
    report.table(["pairs", "accuracy", "ECE", "ECE noise floor", "mean margin", "n"], rows)
    seen = rows[0]
    worst = max(rows[1:], key=lambda r: r[2])
    report.say(f"Finding: on seen pairs the margin averages {seen[4]:.2f} with ECE {seen[2]:.3f}; the least "
               f"calibrated unseen set is '{worst[0]}' (ECE {worst[2]:.3f}, noise floor {worst[3]:.3f}, "
               f"accuracy {worst[1]:.3f}, margin {worst[4]:.2f}). "
               + ("Confidence carries over to unseen pairs about as well as accuracy does."
                  if worst[2] <= seen[2] + 0.05 else
                  "The model is more confident than it is right where it has not seen the fact or phrasing."))
    report.image("calibration.png", "reliability and margins")
    return report.write()
