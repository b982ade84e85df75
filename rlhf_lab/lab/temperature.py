"""`rlhf lab temperature`: SFT against the RLHF policy at every sampling temperature.

Is the RLHF policy more than a sharper SFT model? Sampling SFT at a low
temperature also cuts its tail of typos and stray styles, so a win measured at
temperature 1 could be lower entropy alone. Rafailov et al. (2023, fig. 2) set
methods side by side across sampling temperatures for this reason. Here both
models answer the same held-out prompts at each temperature (temperature 0:
greedy) and the gold judge scores every answer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rlhf_lab import evaluate, pipeline
from rlhf_lab.lab.report import Report, start
from rlhf_lab.run import ConfigError, check_out, check_positive, check_temperature, save_figure

GRID = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass
class TemperatureConfig:
    out: str = "runs/lab/temperature"     # report and plot
    run: str = "runs/demo"                # an `rlhf pipeline` run directory: its ppo/ and rm/ are compared
    temperatures: list[float] = field(default_factory=lambda: list(GRID))  # sampling temperatures; 0: greedy
    samples_per_prompt: int = 4           # answers per held-out prompt at each temperature above 0 (--quick: 1)
    quick: bool = False                   # a small version (tests, CI); without --run's pipeline, a tiny one first
    device: str = "auto"                  # "auto" | "cpu" | "cuda"

    def validate(self) -> None:
        check_out(self.out)
        check_temperature(self, "temperatures")
        check_positive(self, "samples_per_prompt")


def pipeline_run(cfg: TemperatureConfig) -> Path:
    """cfg.run if it holds a finished pipeline; with --quick, else a tiny pipeline made now."""
    run = Path(cfg.run)
    if (run / "ppo" / "model.safetensors").exists() and (run / "rm" / "model.safetensors").exists():
        return run
    if not cfg.quick:
        raise ConfigError(f"{run}: no finished `rlhf pipeline` run here (expected ppo/ and rm/); "
                          f"make one with `rlhf pipeline --out {run}`")
    run = Path(cfg.out) / "pipeline"
    pipeline.main(pipeline.PipelineConfig(out=str(run), preset="tiny", device=cfg.device))
    return run


def compare_at(cfg: TemperatureConfig, run: Path, temperature: float) -> dict:
    metrics, _ = evaluate.compare(evaluate.EvalConfig(
        policy=str(run / "ppo"), rm=str(run / "rm"),                     # SFT: the one the policy recorded
        temperature=temperature, samples_per_prompt=1 if cfg.quick else cfg.samples_per_prompt,
        prompts=24 if cfg.quick else 500, device=cfg.device))
    return metrics


def plot(results: dict[float, dict], path: Path) -> None:
    plt = evaluate.pyplot()
    temperatures = list(results)
    fig, (gold, wins) = plt.subplots(1, 2, figsize=(8, 3.2))
    for name in ("sft", "policy"):
        gold.plot(temperatures, [m[f"gold_mean_{name}"] for m in results.values()], "o-", label=name)
    gold.set(title="gold mean", xlabel="sampling temperature")
    gold.legend(fontsize=8)
    wins.errorbar(temperatures, [m["gold_win_rate_vs_sft"] for m in results.values()],
                  yerr=[m["gold_win_rate_se"] for m in results.values()], fmt="o-", capsize=3)
    wins.axhline(0.5, color="grey", lw=0.8, ls="--")
    wins.set(title="gold win rate, policy over SFT", xlabel="sampling temperature")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def finding(results: dict[float, dict]) -> str:
    """Sentences computed from the measurements."""
    lowest = min(results, key=lambda t: results[t]["gold_win_rate_vs_sft"])
    low_win, low_se = results[lowest]["gold_win_rate_vs_sft"], results[lowest]["gold_win_rate_se"]
    best_sft = max(results, key=lambda t: results[t]["gold_mean_sft"])
    sharpest_sft, policy_at_one = results[best_sft]["gold_mean_sft"], results[max(results)]["gold_mean_policy"]
    verdict = ("so it beats SFT at every temperature measured" if low_win - 2 * low_se > 0.5 else
               "so at that temperature it loses to SFT" if low_win + 2 * low_se < 0.5 else
               "within two standard errors of a tie with SFT")
    lines = [f"the policy's lowest gold win rate over SFT is {low_win:.3f} ± {low_se:.3f} at temperature "
             f"{lowest:g}, {verdict}",
             f"SFT's best gold mean, {sharpest_sft:.3f} at temperature {best_sft:g}, is "
             + (f"below the policy's {policy_at_one:.3f} at temperature {max(results):g}: sharpening SFT "
                "does not buy what RLHF does" if sharpest_sft < policy_at_one else
                f"not below the policy's {policy_at_one:.3f} at temperature {max(results):g}: here a sharper "
                "SFT model matches RLHF")]
    return "Finding: " + "; ".join(lines) + "."


def main(cfg: TemperatureConfig) -> dict:
    out, _ = start(cfg, "lab temperature")   # the pipeline it reads resumes by itself
    run = pipeline_run(cfg)
    results = {t: compare_at(cfg, run, t) for t in sorted(set(cfg.temperatures))}
    report = Report("Sampling temperature: SFT against the RLHF policy", out)
    report.figures = {f"{t:g}": m for t, m in results.items()}
    report.say(f"Both models answer the same held-out prompts of `{run}` at each temperature "
               "(0: greedy, one answer per prompt); the gold judge scores every answer.")
    report.say()
    report.table(["temperature", "gold SFT", "gold policy", "win rate", "± se", "ideal SFT", "ideal policy",
                  "wrong SFT", "wrong policy"],
                 [[f"{t:g}", m["gold_mean_sft"], m["gold_mean_policy"], m["gold_win_rate_vs_sft"],
                   m["gold_win_rate_se"], m["style_mix_sft"]["ideal"], m["style_mix_policy"]["ideal"],
                   m["style_mix_sft"]["wrong"], m["style_mix_policy"]["wrong"]] for t, m in results.items()])
    report.say(finding(results))
    report.say()
    out.mkdir(parents=True, exist_ok=True)
    plot(results, out / "temperature.png")
    report.image("temperature.png", "gold mean of each model and the policy's win rate per temperature")
    return report.write()
