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
from rlhf_lab.lab.report import Report, reward_model_once, start
from rlhf_lab.reward import RewardConfig, load_pairs, load_reward_model, score_pairs
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
    reward_model_once(rm_cfg)
    device = pick_device(cfg.device)
    model = load_reward_model(rm_cfg.out, device)
    train, heldout, _ = load_pairs(rm_cfg, annotated_world(rm_cfg), model.tokenizer, model.config.context_len)
    sets = {"seen (training pairs)": train[:rm_cfg.heldout_pairs], **{f"unseen: {k.removeprefix('heldout_')}": v
                                                       for k, v in heldout.items()}}
    return {name: score_pairs(model, pairs, device, raw=True) for name, pairs in sets.items()}   # log-odds scale


def finding(rows: list[list]) -> str:
    """From the table's rows (name, accuracy, mean confidence, ECE, noise floor, mean margin, n),
    the seen pairs first: how calibration carries over to the least calibrated unseen set, and
    in which direction it errs there."""
    seen, worst = rows[0], max(rows[1:], key=lambda r: r[3])
    text = (f"Finding: on seen pairs the margin averages {seen[5]:.2f} with ECE {seen[3]:.3f}; the least calibrated "
            f"unseen set is '{worst[0]}' (ECE {worst[3]:.3f}, noise floor {worst[4]:.3f}, accuracy {worst[1]:.3f}, "
            f"mean confidence {worst[2]:.3f}, margin {worst[5]:.2f}). ")
    if worst[3] <= seen[3] + 0.05:
        return text + "Confidence carries over to unseen pairs about as well as accuracy does."
    return text + (f"There the model is {'more' if worst[2] > worst[1] else 'less'} confident than it is right.")


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
        confidence = sum(conf * n for conf, _, n in bins) / len(margin)          # mean max(p, 1 - p)
        report.figures[name] = {"accuracy": pair_accuracy(chosen, rejected), "mean_confidence": confidence, "ece": ece,
                                "ece_noise_floor": floor, "mean_margin": margin.mean().item(), "pairs": len(margin)}
        rows.append([name, report.figures[name]["accuracy"], confidence, ece, floor, margin.mean().item(),
                     len(margin)])
        rel.plot([b[0] for b in bins], [b[1] for b in bins], "o-", label=name)
        hist.hist(margin.numpy(), bins=40, alpha=0.5, label=name)
    rel.set(xlabel="confidence", ylabel="accuracy (vs labels)", title="reliability")
    rel.legend(fontsize=7)
    hist.set(xlabel="margin r_c − r_r", ylabel="pairs", title="margins")
    fig.tight_layout()
    save_figure(fig, report.out / "calibration.png")
    plt.close(fig)
    report.table(["pairs", "accuracy", "mean confidence", "ECE", "ECE noise floor", "mean margin", "n"], rows)
    report.say(finding(rows))
    report.image("calibration.png", "reliability and margins")
    return report.write()
