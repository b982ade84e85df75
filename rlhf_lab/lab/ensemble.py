"""`rlhf lab ensemble`: does a conservative reward-model ensemble delay over-optimization?

The over-optimization experiment, once with a single proxy and once with K = 4
proxies trained on the same pairs with different seeds and data orders, scored as
mean − 1·std (Coste et al. 2024). Compared: where the gold reward peaks in KL.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from rlhf_lab.lab.overoptimization import (OveroptimizationConfig, describe_peak, later_peak, measure, sft_samples,
                                          write_report)
from rlhf_lab.lab.report import Report, start
from rlhf_lab.run import check_non_negative, check_out, check_positive, check_range


@dataclass
class EnsembleConfig:
    out: str = "runs/lab/ensemble"  # run directory: both experiments and the comparison
    members: int = 4                # reward models in the ensemble
    std_coef: float = 1.0           # conservative score: mean − std_coef · std
    proxy_pairs: int = 1000         # training pairs of every proxy
    iterations: int = 20            # PPO iterations per run (full run: under 10 min on 2 cores)
    quick: bool = False             # a small version (tests, CI)
    device: str = "auto"            # "auto" | "cpu" | "cuda"

    def validate(self) -> None:
        check_out(self.out)
        check_range(self, "members", 2)      # one member is the single proxy it is compared with
        check_non_negative(self, "std_coef")
        check_positive(self, "proxy_pairs", "iterations")


def main(cfg: EnsembleConfig) -> dict:
    _, resume = start(cfg, "lab ensemble")
    base = OveroptimizationConfig(out=cfg.out, proxy_pairs=[cfg.proxy_pairs], iterations=cfg.iterations,
                                  quick=cfg.quick, device=cfg.device)
    pool = sft_samples(base)                                 # both proxies pick from the same answers
    single = measure(base, resume, pool)
    members = 2 if cfg.quick else cfg.members
    ensemble = measure(replace(base, ensemble=members, ensemble_std_coef=cfg.std_coef), resume, pool)
    results = {"1 model": next(iter(single.values())), f"{members} models": next(iter(ensemble.values()))}
    figures = write_report(results, Path(cfg.out), f"Over-optimization: one proxy versus a {members}-model ensemble",
                           proxy_name="{}", by_size=False)
    return compare(results, figures, Path(cfg.out) / "comparison")


def compare(results: dict, figures: dict, out: Path) -> dict:
    """Where the gold peak sits for the single proxy and for the ensemble, under both methods."""
    (one_name, one), (many_name, many) = results.items()
    best = {k: max(r["rl"], key=lambda p: p["gold"]) for k, r in results.items()}
    report = Report("Ensemble versus single reward model", out, figures)
    report.table(["proxy", "best-of-n peak d", "PPO peak d (fit)", "best PPO gold", "at d"],
                 [[k, describe_peak(r["bon_peak_d"]), describe_peak(r["rl_peak_d"]), best[k]["gold"], best[k]["d"]]
                  for k, r in results.items()])
    sentences = []
    for method, name in (("bon", "best-of-n"), ("rl", "PPO")):
        later = later_peak(one, many, method)
        sentences.append(f"under {name} the gold peak is at d = {describe_peak(many[f'{method}_peak_d'])} with "
                         f"{many_name} versus {describe_peak(one[f'{method}_peak_d'])} with {one_name}: "
                         + ("the ensemble pushes it to larger KL" if later else "it did not move to larger KL"
                            if later is False else "a peak lies beyond the KL measured, so these runs cannot tell"))
    report.say("Finding: " + "; ".join(sentences) + ".")
    return report.write()
