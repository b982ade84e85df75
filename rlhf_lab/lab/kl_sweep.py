"""`rlhf lab kl-sweep`: the KL coefficient β from too small to too large.

Expected (Ziegler et al. 2019; InstructGPT): with β too low the KL runs away and
the gold score falls while the proxy climbs; with β too high the policy barely
moves. Whether that shape appears is read off the measurements, not assumed.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from rlhf_lab.evaluate import plot_runs
from rlhf_lab.lab.report import Report, lab_ppo, start, train_ppo_once, world_reward_model
from rlhf_lab.run import check_out, check_positive, check_range, read_json, read_log


@dataclass
class KLSweepConfig:
    out: str = "runs/lab/kl_sweep"                 # run directory: the reward model, one PPO run per β, report
    betas: list[float] = field(default_factory=lambda: [0.001, 0.02, 0.5])  # KL coefficients swept
    rm_pairs: int = 7000                           # training pairs of the shared reward model
    iterations: int = 25                           # PPO iterations per β (full run: under 10 min on 2 cores)
    quick: bool = False                            # a small version (tests, CI)
    device: str = "auto"                           # "auto" | "cpu" | "cuda"

    def validate(self) -> None:
        check_out(self.out)
        check_range(self, "betas", 0.0)
        check_positive(self, "rm_pairs", "iterations")


def main(cfg: KLSweepConfig) -> dict:
    out, resume = start(cfg, "lab kl-sweep")
    rm = world_reward_model(out, cfg.rm_pairs, cfg.quick, cfg.device, resume)
    base = lab_ppo(cfg.iterations, cfg.quick, cfg.device, resume, rm=str(rm))
    betas = sorted(cfg.betas)                      # the finding reads the lowest and highest β off the ends
    runs = {f"β={b}": out / f"beta_{b}" for b in betas}
    for beta, (label, run) in zip(betas, runs.items()):
        train_ppo_once(replace(base, out=str(run), kl_coef=beta))
    report = Report("KL sweep: how hard to hold the policy to SFT", out)
    plot_runs(runs, ["ppo/score", "ppo/gold", "ppo/kl"], out / "kl_sweep.png", "proxy, gold and KL per β")
    rows = []
    for beta, (label, run) in zip(betas, runs.items()):
        history = read_log(run)
        final = read_json(run / "metrics.json")
        rows.append([beta, final["score"], final["gold"], max(h["ppo/gold"] for h in history), final["kl"]])
        report.figures[label] = final
    report.table(["β", "final proxy", "final gold", "best gold seen", "final KL (nats)"], rows)
    best = max(rows, key=lambda r: r[2])
    low, high = rows[0], rows[-1]
    shape = []
    shape.append(f"lowest β={low[0]} ends at KL {low[4]:.1f} with gold {low[2]:.2f}"
                 + (" below its own peak of {:.2f}".format(low[3]) if low[2] < low[3] - 0.02 else ""))
    shape.append(f"highest β={high[0]} ends at KL {high[4]:.1f} with gold {high[2]:.2f}")
    report.say(f"Finding: the best final gold score, {best[2]:.2f}, came from β={best[0]}; " + "; ".join(shape) + ". "
               + ("This is the expected shape: too little leash over-optimises, too much learns little."
                  if best[0] not in (low[0], high[0]) else
                  "The expected interior optimum did not appear at these settings; the table is what was measured."))
    report.image("kl_sweep.png", "proxy, gold and KL per iteration for each β")
    return report.write()

