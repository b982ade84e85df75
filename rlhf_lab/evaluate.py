"""Measuring against the gold judge: samples, style mix, win rates, tables and plots.

Every claim the project makes (the SFT model imitates every style, the reward
model agrees with gold, PPO improves answers, over-optimization) is computed here
from the world's gold judge, never eyeballed.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch
from torch import Tensor

from rlhf_lab.model import CausalLM, SamplingConfig
from rlhf_lab.rollout import sample_texts
from rlhf_lab.run import Run
from rlhf_lab.world import STYLES, World


def judge_texts(world: World, prompts: list[str], responses: list[str]) -> dict:
    """Gold mean, well-formed rate, style mix and mean length of a set of responses."""
    judgements = [world.judge(p, r) for p, r in zip(prompts, responses)]
    counts = Counter(j.style for j in judgements)
    n = len(judgements)
    return {"gold_mean": sum(j.score for j in judgements) / n,
            "well_formed_rate": 1 - counts[None] / n,
            "style_mix": {s: counts[s] / n for s in STYLES},
            "mean_len": sum(len(r.encode()) for r in responses) / n}


def sample_and_judge(model: CausalLM, world: World, prompts: list[str], sampling: SamplingConfig,
                     seed: int) -> dict:
    return judge_texts(world, prompts, sample_texts(model, prompts, sampling, seed=seed))


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_format(v)}" for k, v in value.items())
    return str(value)


def table(title: str, metrics: dict) -> str:
    """A two-column text table of a run's final figures."""
    width = max(len(k) for k in metrics)
    return "\n".join([f"== {title}"] + [f"{k:<{width}}  {_format(v)}" for k, v in metrics.items()])


def plot_history(run: Run, keys: list[str], title: str, filename: str) -> None:
    """Curves of logged metrics against step, one PNG in the run directory."""
    plt = _pyplot()
    history = run.history()
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3), squeeze=False)
    for ax, key in zip(axes[0], keys):
        points = [(h["step"], h[key]) for h in history if key in h]
        if points:
            ax.plot(*zip(*points))
        ax.set_title(key)
        ax.set_xlabel("step")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(run.path / filename, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------- reward models

def pair_accuracy(chosen: Tensor, rejected: Tensor) -> float:
    """Share of pairs where the chosen answer gets the higher reward (ties count half)."""
    return ((chosen > rejected).float() + 0.5 * (chosen == rejected).float()).mean().item()


def expected_calibration_error(chosen: Tensor, rejected: Tensor, bins: int = 10) -> tuple[float, list]:
    """ECE of the Bradley-Terry probability σ(r_c - r_r) (Guo et al. 2017).

    Each pair's prediction is the side the model favours, with confidence
    max(p, 1-p); a bin's gap is |accuracy - mean confidence|. Returns the ECE and
    (confidence, accuracy, count) per non-empty bin for the reliability diagram.
    """
    p = torch.sigmoid(chosen - rejected)                                   # (N,)
    confidence, correct = torch.maximum(p, 1 - p), (p > 0.5).float()
    edges = torch.linspace(0.5, 1.0, bins + 1)
    index = torch.bucketize(confidence, edges[1:-1])                        # (N,) in 0..bins-1
    ece, table = 0.0, []
    for b in range(bins):
        in_bin = index == b
        if in_bin.any():
            conf, acc, n = confidence[in_bin].mean().item(), correct[in_bin].mean().item(), int(in_bin.sum())
            ece += abs(acc - conf) * n / len(p)
            table.append((conf, acc, n))
    return ece, table


def reliability_plot(table: list, path: Path, title: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0.5, 1], [0.5, 1], "k--", label="perfect calibration")
    conf, acc, n = zip(*table) if table else ((), (), ())
    ax.scatter(conf, acc, s=[10 + 200 * k / max(n) for k in n], label="bins (size = pairs)")
    ax.set_xlabel("confidence σ(|r_c - r_r|)")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def length_baseline_accuracy(pairs: list) -> float:
    """The better of "longer wins" and "shorter wins" on these pairs: an upper bound
    on what any length-only rule can reach, so beating it means more than length."""
    longer = sum((len(p.chosen) > len(p.rejected)) + 0.5 * (len(p.chosen) == len(p.rejected)) for p in pairs)
    return max(longer, len(pairs) - longer) / len(pairs)


def gold_accuracy(world: World, pairs: list, chosen: Tensor, rejected: Tensor) -> tuple[float, int]:
    """Agreement with the gold ordering on pairs whose gold scores differ."""
    agree, n = 0, 0
    for pair, c, r in zip(pairs, chosen.tolist(), rejected.tolist()):
        gold_c, gold_r = world.gold(pair.prompt, pair.chosen), world.gold(pair.prompt, pair.rejected)
        if gold_c != gold_r:
            agree += (c > r) == (gold_c > gold_r)
            n += 1
    return agree / max(n, 1), n


def reward_report(model, train: list, heldout: dict[str, list], world: World | None, out: Path,
                  device) -> dict:
    """Accuracy, margin, calibration, gold agreement and the length baseline."""
    from rlhf_lab.data import PreferencePair
    from rlhf_lab.reward import score_pairs
    from rlhf_lab.world import TEXTBOOK_PAIRS

    metrics = {}
    if train:
        metrics["train_accuracy"] = pair_accuracy(*score_pairs(model, train[:2000], device))
    everything = [p for pairs in heldout.values() for p in pairs]
    scored = {name: score_pairs(model, pairs, device) for name, pairs in heldout.items()}
    chosen = torch.cat([c for c, _ in scored.values()])
    rejected = torch.cat([r for _, r in scored.values()])
    ece, bins = expected_calibration_error(chosen, rejected)
    metrics.update(heldout_accuracy=pair_accuracy(chosen, rejected),
                   length_baseline_accuracy=length_baseline_accuracy(everything),
                   chosen_reward_mean=chosen.mean().item(), rejected_reward_mean=rejected.mean().item(),
                   margin=(chosen - rejected).mean().item(), ece=ece, heldout_pairs=len(everything))
    for name, (c, r) in scored.items():
        metrics[f"{name}_accuracy"] = pair_accuracy(c, r)
    if world is not None:
        metrics["heldout_gold_accuracy"], metrics["heldout_gold_pairs"] = gold_accuracy(
            world, everything, chosen, rejected)
        for name, (c, r) in scored.items():
            metrics[f"{name}_gold_accuracy"] = gold_accuracy(world, heldout[name], c, r)[0]
    textbook = [PreferencePair(t["prompt"], t["preferred"], t["rejected"]) for t in TEXTBOOK_PAIRS]
    tc, tr = score_pairs(model, textbook, device)
    metrics["textbook_pairs_correct"] = int((tc > tr).sum())
    reliability_plot(bins, out / "reliability.png", f"reward model calibration (ECE {ece:.3f})")
    return metrics


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt
