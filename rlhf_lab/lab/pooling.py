"""`rlhf lab pooling`: last-token versus mean pooling, same data, several seeds.

InstructGPT reads the reward at the final token, whose hidden state has attended
to the whole answer; mean pooling averages every response position. Which one
generalises better to unseen prompts is measured here, with the spread over seeds.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from rlhf_lab.evaluate import pyplot
from rlhf_lab.lab.report import Report, reward_model_once, start
from rlhf_lab.reward import RewardConfig
from rlhf_lab.run import check_out, check_positive, check_range, read_json, save_figure

SPLITS = ("heldout_prompt", "heldout_template", "heldout_fact")
KEYS = [f"{s}_gold_accuracy" for s in SPLITS]
LABELS = ["unseen prompt", "unseen template", "unseen fact"]


@dataclass
class PoolingConfig:
    out: str = "runs/lab/pooling"   # run directory: one reward model per pooling and seed, plots, report
    seeds: int = 3                  # reward models per pooling (2 or more: the spread weighs each gap)
    pairs: int = 10000              # training pairs per model (about 476 ranked prompts)
    epochs: int = 1                 # epochs per model (full run: under 10 min on 2 cores)
    quick: bool = False             # a small version (tests, CI)
    device: str = "auto"            # "auto" | "cpu" | "cuda"

    def validate(self) -> None:
        check_out(self.out)
        check_positive(self, "seeds", "pairs", "epochs")
        check_range(self, "seeds", 2)        # the finding weighs each gap against the spread over seeds


def run(cfg: PoolingConfig, resume: bool) -> dict:
    seeds, pairs = (2, 256) if cfg.quick else (cfg.seeds, cfg.pairs)
    results = {}
    for pooling in ("last", "mean"):
        results[pooling] = [read_json(reward_model_once(RewardConfig(
            out=str(Path(cfg.out) / f"{pooling}_seed{seed}"), pooling=pooling, seed=seed, pairs=pairs,
            epochs=cfg.epochs, norm_samples=64 if cfg.quick else 256, heldout_pairs=100 if cfg.quick else 500,
            device=cfg.device, resume=resume)) / "metrics.json")
            for seed in range(seeds)]
    return results


def summarise(results: dict) -> dict:
    """Mean and standard deviation over seeds of each held-out accuracy."""
    out = {}
    for pooling, runs in results.items():
        for key in KEYS:
            values = [r[key] for r in runs]
            out[f"{pooling}/{key}"] = {"mean": statistics.mean(values),
                                       "std": statistics.stdev(values),
                                       "values": values}
    return out


def plot(summary: dict, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for offset, pooling in ((-0.2, "last"), (0.2, "mean")):
        means = [summary[f"{pooling}/{k}"]["mean"] for k in KEYS]
        stds = [summary[f"{pooling}/{k}"]["std"] for k in KEYS]
        ax.bar([i + offset for i in range(len(KEYS))], means, 0.4, yerr=stds, capsize=3, label=pooling)
    ax.set_xticks(range(len(KEYS)), LABELS)
    ax.set_ylabel("agreement with gold")
    ax.set_ylim(0.5, 1.0)
    ax.legend(title="pooling")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def main(cfg: PoolingConfig) -> dict:
    _, resume = start(cfg, "lab pooling")
    summary = summarise(run(cfg, resume))
    report = Report("Reward-model pooling: last token versus mean", Path(cfg.out), summary)
    plot(summary, report.out / "pooling.png")
    rows = [[k.split("/")[1], k.split("/")[0], v["mean"], v["std"], len(v["values"])] for k, v in summary.items()]
    report.table(["held-out accuracy vs gold", "pooling", "mean", "std", "seeds"], rows)
    gaps = []
    for key, label in zip(KEYS, LABELS):
        last, mean = summary[f"last/{key}"], summary[f"mean/{key}"]
        gap = last["mean"] - mean["mean"]
        # two standard errors of the difference of two means over seeds (about 95%)
        noise = 2 * ((last["std"] ** 2 + mean["std"] ** 2) / len(last["values"])) ** 0.5
        verdict = ("within noise" if abs(gap) <= noise else
                   f"{'last-token' if gap > 0 else 'mean'} pooling ahead beyond noise")
        gaps.append(f"{label}: last {last['mean']:.3f} ± {last['std']:.3f}, mean {mean['mean']:.3f} ± "
                    f"{mean['std']:.3f}, gap {gap:+.3f} against two standard errors of {noise:.3f}, {verdict}")
    report.say("Finding: held-out agreement with gold, mean ± std over seeds. " + "; ".join(gaps) + ".")
    report.image("pooling.png", "held-out accuracy by pooling")
    return report.write()
