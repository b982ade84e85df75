"""`rlhf lab overoptimization`: gold versus proxy reward as the policy moves away from SFT.

After Gao, Schulman & Hilton 2022, "Scaling Laws for Reward Model Overoptimization":
the gold judge labels a finite preference set, a proxy reward model learns from it,
and the policy is optimised against the proxy by best-of-n sampling and by PPO.
With d = sqrt(KL(π ‖ π_SFT)), they found the gold gain follows
    best-of-n:  d (α − β d)          RL:  d (α − β log d)
rising, peaking and falling while the proxy keeps rising; bigger proxies peak later.
Deviations: proxies differ in training-set size, not parameter count; PPO keeps a
tiny KL penalty (β = 0.001) for stability; KL of best-of-n is the analytic
log n − (n − 1)/n (Stiennon et al. 2020).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rlhf_lab.evaluate import proxy_scores, pyplot
from rlhf_lab.lab.report import Report, lab_ppo, reward_model_once, start, train_ppo_once
from rlhf_lab.model import SamplingConfig
from rlhf_lab.reward import RewardConfig, check_ensemble_spread, ensemble_settings, load_reward_model
from rlhf_lab.rollout import sample_texts
from rlhf_lab.run import (
    SHIPPED, ConfigError, check_non_negative, check_out, check_positive, load_model, pick_device, read_log,
    save_figure)
from rlhf_lab.world import World


@dataclass
class OveroptimizationConfig:
    out: str = "runs/lab/overoptimization"                # run directory: proxies, PPO runs, plots, report
    proxy_pairs: list[int] = field(default_factory=lambda: [500, 2000, 7000])  # proxy training-set sizes
    max_n: int = 256                                      # best-of-n up to this n (powers of 2)
    prompts: int = 32                                     # held-out prompts for best-of-n
    iterations: int = 20                                  # PPO iterations per proxy (full run: ~10 min)
    kl_coef: float = 0.001                                # PPO β, small so the policy can run far
    ensemble: int = 1                                     # reward models per proxy (lab ensemble uses 4)
    ensemble_std_coef: float = 1.0                        # conservative ensemble: mean − k·std
    quick: bool = False                                   # a small version (tests, CI)
    device: str = "auto"                                  # "auto" | "cpu" | "cuda"

    def validate(self) -> None:
        check_out(self.out)
        check_positive(self, "proxy_pairs", "max_n", "prompts", "iterations", "ensemble")
        check_non_negative(self, "kl_coef", "ensemble_std_coef")
        check_ensemble_spread(self)
        if self.max_n & (self.max_n - 1) or self.max_n < 4:   # best_of_n splits each prompt's max_n answers
            # into groups of n = 2^k; the two-parameter fit needs two points beyond n = 1
            raise ConfigError(f"--max-n must be a power of 2 of at least 4; got {self.max_n}")


def bon_kl(n: int) -> float:
    """KL(best-of-n ‖ base) for distinct samples, Stiennon et al. 2020 appendix."""
    return math.log(n) - (n - 1) / n


def train_proxy(cfg: OveroptimizationConfig, pairs: int, resume: bool) -> Path:
    """A proxy reward model from `pairs` gold-labelled pairs (label temperature 0: pure gold)."""
    return reward_model_once(RewardConfig(
        out=str(Path(cfg.out) / f"proxy_{pairs}_k{cfg.ensemble}"), pairs=pairs, label_temperature=0.0,
        **ensemble_settings(cfg.ensemble, cfg.ensemble_std_coef), epochs=1 if cfg.quick else 2,
        norm_samples=64 if cfg.quick else 256, heldout_pairs=100 if cfg.quick else 500, device=cfg.device,
        resume=resume))


def best_of_n(world: World, proxy, prompts: list[str], samples: list[list[str]], max_n: int, device) -> list[dict]:
    """For n = 1, 2, 4, ...: pick the proxy's favourite of each group of n samples.

    samples[i] holds max_n answers to prompts[i]; each n uses all max_n/n disjoint groups,
    so the means have low variance.
    """
    flat_prompts = [p for p, group in zip(prompts, samples) for _ in group]
    flat = [s for group in samples for s in group]
    proxy_all = proxy_scores(proxy, flat_prompts, flat, device).view(len(prompts), max_n)          # (P, max_n)
    gold_all = torch.tensor([world.gold(p, s) for p, s in zip(flat_prompts, flat)]).view(len(prompts), max_n)
    points, n = [], 1
    while n <= max_n:
        groups_proxy = proxy_all.view(len(prompts), max_n // n, n)                                 # (P, G, n)
        pick = groups_proxy.argmax(-1, keepdim=True)
        points.append({"n": n, "d": math.sqrt(bon_kl(n)),
                       "proxy": groups_proxy.gather(-1, pick).mean().item(),
                       "gold": gold_all.view(len(prompts), max_n // n, n).gather(-1, pick).mean().item()})
        n *= 2
    return points


def rl_points(run: Path) -> list[dict]:
    return [{"d": math.sqrt(max(h["ppo/kl"], 0.0)), "proxy": h["ppo/score"], "gold": h["ppo/gold"]}
            for h in read_log(run)]


def fit(points: list[dict], form: str) -> tuple[float, float]:
    """Least squares for Δgold = d(α − β d) ("bon") or d(α − β log d) ("rl"); returns (α, β).
    Δgold is measured from the first point, the SFT policy itself (n = 1, or PPO's first rollout)."""
    base = points[0]["gold"]
    d = np.array([p["d"] for p in points if p["d"] > 0])
    y = np.array([p["gold"] - base for p in points if p["d"] > 0])
    features = np.stack([d, -d * (d if form == "bon" else np.log(d))], 1)
    (alpha, beta), *_ = np.linalg.lstsq(features, y, rcond=None)
    return float(alpha), float(beta)


def peak(alpha: float, beta: float, form: str, d_max: float = math.inf) -> float | None:
    """d at which the fitted gold curve peaks: None when it never turns down within the
    measured range (up to d_max; a fit knows nothing beyond it), 0 when it falls from the
    start (more optimisation only hurts)."""
    if beta <= 0:
        return None if alpha > 0 else 0.0
    d = max(0.0, alpha / (2 * beta)) if form == "bon" else math.exp(alpha / beta - 1)
    return None if d > d_max else d


POINTS = {"bon": "best_of_n", "rl": "rl"}   # where a result keeps each method's measured points


def later_peak(first: dict, second: dict, method: str) -> bool | None:
    """Whether second's gold peak under `method` ("bon" or "rl") lies at a larger d than first's
    (write_report's results): True, False, or None where the measurements cannot tell. A peak
    not found is only known to lie beyond its run's farthest d, which differs between PPO runs."""
    def bounds(r: dict) -> tuple[float, float]:
        d = r[f"{method}_peak_d"]
        return (d, d) if d is not None else (max(p["d"] for p in r[POINTS[method]]), math.inf)
    (first_low, first_high), (second_low, second_high) = bounds(first), bounds(second)
    if second_low > first_high:
        return True
    return False if second_high <= first_low else None


def describe_peak(d: float | None) -> str:
    return ("none (gold does not turn down where measured)" if d is None else
            "0 (gold falls from the start)" if d == 0 else f"{d:.2f}")


def sft_samples(cfg: OveroptimizationConfig) -> tuple[list[str], list[list[str]]]:
    """Held-out prompts and max_n SFT answers to each: the pool best-of-n picks from."""
    max_n, n_prompts = (16, 8) if cfg.quick else (cfg.max_n, cfg.prompts)
    prompts = World().prompts("heldout_prompt")[:n_prompts]
    repeated = [p for p in prompts for _ in range(max_n)]
    flat = sample_texts(load_model(SHIPPED, pick_device(cfg.device)), repeated, SamplingConfig(), seed=0)
    return prompts, [flat[i * max_n:(i + 1) * max_n] for i in range(len(prompts))]


def measure(cfg: OveroptimizationConfig, resume: bool, pool: tuple[list[str], list[list[str]]] | None = None) -> dict:
    """Best-of-n and PPO against each proxy (resume: report.start's verdict); `pool` reuses
    sft_samples across calls."""
    device = pick_device(cfg.device)
    world = World()
    prompts, samples = pool or sft_samples(cfg)
    max_n = len(samples[0])
    results = {}
    sizes = ([200 * (i + 1) for i in range(min(2, len(cfg.proxy_pairs)))] if cfg.quick
             else sorted(set(cfg.proxy_pairs)))                      # ascending: the finding reads them so
    for pairs in sizes:
        proxy_dir = train_proxy(cfg, pairs, resume)
        proxy = load_reward_model(proxy_dir, device).eval()
        run = Path(cfg.out) / f"ppo_{pairs}_k{cfg.ensemble}"
        train_ppo_once(lab_ppo(cfg.iterations, cfg.quick, cfg.device, resume, out=str(run), rm=str(proxy_dir),
                          kl_coef=cfg.kl_coef))
        bon, rl = best_of_n(world, proxy, prompts, samples, max_n, device), rl_points(run)
        results[pairs] = {"best_of_n": bon, "rl": rl, "fit_bon": fit(bon, "bon"), "fit_rl": fit(rl, "rl")}
    return results


def plot(results: dict, path: Path, title: str, proxy_name: str) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, (pairs, r) in enumerate(results.items()):
        color = f"C{i % 10}"
        for ax, key, form in ((axes[0], "best_of_n", "bon"), (axes[1], "rl", "rl")):
            pts = r[key]
            d = np.array([p["d"] for p in pts])
            base = pts[0]["gold"]
            ax.scatter(d, [p["gold"] for p in pts], color=color, s=12, label=f"gold, {proxy_name.format(pairs)}")
            ax.scatter(d, [p["proxy"] for p in pts], color=color, s=12, marker="x", alpha=0.5)
            low = max(d.min(), 1e-3)                     # log d: keep the grid off zero
            grid = np.linspace(low, max(d.max(), low), 100)
            alpha, beta = r[f"fit_{form}"]
            curve = grid * (alpha - beta * (grid if form == "bon" else np.log(grid))) + base
            ax.plot(grid, curve, color=color)
    axes[0].set(title="best-of-n (x: proxy, dots: gold, line: fit)", xlabel="d = sqrt(KL)", ylabel="reward")
    axes[1].set(title="PPO (x: proxy, dots: gold, line: fit)", xlabel="d = sqrt(KL)")
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def write_report(results: dict, out: Path, title: str, proxy_name: str = "proxy from {} pairs",
                 by_size: bool = True) -> dict:
    """Table, plot and the peak of each proxy; by_size: the proxies differ in training-set
    size, ascending, and with two or more the finding says whether the peak moves with it."""
    out.mkdir(parents=True, exist_ok=True)
    report = Report(title, out, {str(k): v for k, v in results.items()})
    plot(results, out / "overoptimization.png", title, proxy_name)
    rows = []
    for pairs, r in results.items():
        bon_peak, rl_peak = (peak(*r[f"fit_{form}"], form, max(p["d"] for p in r[POINTS[form]])) for form in POINTS)
        best_bon = max(r["best_of_n"], key=lambda p: p["gold"])
        rows.append([proxy_name.format(pairs), *r["fit_bon"], describe_peak(bon_peak), best_bon["n"],
                     *r["fit_rl"], describe_peak(rl_peak)])
        r["bon_peak_d"], r["rl_peak_d"] = bon_peak, rl_peak
    report.table(["proxy", "BoN α", "BoN β", "BoN peak d", "best n", "RL α", "RL β", "RL peak d"], rows)
    finding = "Finding: " + "; ".join(f"{proxy_name.format(p)}: gold peaks at d = {describe_peak(r['bon_peak_d'])} "
                                      f"under best-of-n and {describe_peak(r['rl_peak_d'])} under PPO (fits)"
                                      for p, r in results.items()) + "."
    if by_size and len(results) > 1:
        ordered = list(results.values())
        for method in POINTS:
            later = [later_peak(a, b, method) for a, b in zip(ordered, ordered[1:])]
            verdict = ("does not move steadily to larger KL with proxy size in these measurements." if False in later
                       else "moves to larger KL as the proxy gets more data, as Gao et al. found." if all(later)
                       else "may move with proxy size, but a peak lies beyond the KL measured: these runs cannot tell.")
            finding += f" Under {'best-of-n' if method == 'bon' else 'PPO'} the gold peak {verdict}"
    report.say(finding)
    report.image("overoptimization.png", "gold and proxy reward against sqrt(KL)")
    return report.write()


def main(cfg: OveroptimizationConfig) -> dict:
    _, resume = start(cfg, "lab overoptimization")
    return write_report(measure(cfg, resume), Path(cfg.out), "Reward over-optimization (after Gao et al. 2022)")
