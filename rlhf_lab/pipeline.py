"""`rlhf pipeline`: SFT → reward model → PPO → eval on the assistant world, one run directory.

    out/sft   (only with --from-scratch or --init; otherwise --sft's model or the shipped SFT checkpoint)
    out/rm    out/ppo    out/eval/report.md    out/report.md    out/metrics.json
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from rlhf_lab import distributed, evaluate, ppo, reward, sft
from rlhf_lab.run import (
    SHIPPED, ConfigError, changed_flags, check_choice, check_exists, check_not_an_input, check_out, input_digests,
    pick_device, read_json, recorded_config, status, write_json, write_text)

PRESETS = ("default", "tiny")


@dataclass
class PipelineConfig:
    out: str = "runs/pipeline"       # run directory holding sft/, rm/, ppo/, eval/
    from_scratch: bool = False       # retrain SFT instead of starting from the shipped checkpoint
    init: str = ""                   # SFT from this model instead (a Hugging Face save_pretrained directory with its
                                     # tokenizer, or a run directory): the whole pipeline on your own model
    sft: str = ""                    # start from this trained SFT model instead of the shipped one, without training
                                     # it further (a run directory, e.g. `rlhf sft --optimizer muon`'s, docs/sft.md)
    preset: str = "default"          # "default" | "tiny" (about a minute on 2 CPU cores: same code, small sizes)
    kl_coef: float = 0.1             # β of the PPO stage (see docs/ppo.md for 0.02 and 0.05)
    advantage: str = "gae"           # the PPO stage's estimator: "gae" (critic) | "baseline" | "rloo" (no critic)
    samples_per_prompt: int = 1      # the PPO stage's answers per drawn prompt (rloo: k ≥ 2, e.g. 4)
    entropy_coef: float = -1.0       # the PPO stage's entropy term (D21): -1 sharpens the policy against the SFT
                                     # model's temperature-1 slips, chosen on held-out templates (docs/ppo.md);
                                     # 0: InstructGPT's objective, as `rlhf ppo` has it by default
    seed: int = 0                    # every stage's seed
    world_seed: int = 0              # the assistant world
    device: str = "auto"             # "auto" | "cpu" | "cuda"
    precision: str = "fp32"          # "fp32" | "bf16" autocast (for wide models; slower at width 128)
    compile: bool = False            # torch.compile the blocks (slower at width 128, docs/benchmarks.md)
    resume: bool = True              # continue killed stages from their train states (--no-resume: start over)


def stage_configs(cfg: PipelineConfig):
    """The four stage configs, each writing under cfg.out; "tiny" shrinks the work."""
    out = Path(cfg.out)
    common = dict(seed=cfg.seed, world_seed=cfg.world_seed, device=cfg.device, precision=cfg.precision,
                  compile=cfg.compile, resume=cfg.resume)
    sft_dir = cfg.sft or (str(out / "sft") if trains_sft(cfg) else SHIPPED)
    stages = (sft.SFTConfig(out=str(out / "sft"), init=cfg.init, **common),
              reward.RewardConfig(out=str(out / "rm"), sft=sft_dir, **common),
              ppo.PPOConfig(out=str(out / "ppo"), sft=sft_dir, rm=str(out / "rm"), kl_coef=cfg.kl_coef,
                            advantage=cfg.advantage, samples_per_prompt=cfg.samples_per_prompt,
                            entropy_coef=cfg.entropy_coef, **common),
              evaluate.EvalConfig(policy=str(out / "ppo"), sft=sft_dir, rm=str(out / "rm"),
                                  out=str(out / "eval"), world_seed=cfg.world_seed, seed=cfg.seed,
                                  device=cfg.device, precision=cfg.precision))
    if cfg.preset == "tiny":
        s, r, p, e = stages
        stages = (replace(s, steps=60, examples=500, eval_every=30, eval_samples=64),
                  replace(r, pairs=4200, batch_size=8, epochs=1, norm_samples=64, heldout_pairs=100),
                  replace(p, iterations=10, batch_size=32, minibatch_size=16, eval_every=5),
                  replace(e, shown=4, samples_per_prompt=1))
    return stages


def trains_sft(cfg: PipelineConfig) -> bool:
    return cfg.from_scratch or bool(cfg.init)


PIPELINE_OUTPUTS = ("config.json", "metrics.json", "report.md")   # beside the stages' directories


def judged(cfg: evaluate.EvalConfig) -> dict:
    """The eval stage's metrics: those on disk where they judged these very models (by their
    contents, inputs.json) with this config, --device as given (a rerun of a finished pipeline),
    else a new eval."""
    out = Path(cfg.out)
    files = [out / name for name in ("metrics.json", "report.md", "config.json", "inputs.json")]
    if all(f.exists() for f in files) and not changed_flags(out, "eval", cfg, recorded_config("eval", cfg),
                                                             input_digests(cfg), anywhere=("out", "resume")):
        status(f"eval: {out} already judged this policy; `rlhf eval --policy {cfg.policy} --out {out}` judges "
               "it again")
        return read_json(files[0])
    return evaluate.main(cfg)


def main(cfg: PipelineConfig) -> dict:
    check_choice("preset", cfg.preset, PRESETS)
    chosen = [flag for flag, given in (("--from-scratch", cfg.from_scratch), ("--init", cfg.init), ("--sft", cfg.sft))
              if given]
    if len(chosen) > 1:
        raise ConfigError(f"{' and '.join(chosen)} each choose the SFT model (--from-scratch trains a fresh MiniGPT, "
                          "--init fine-tunes a given model, --sft takes a trained one as it is): pick one")
    sft_cfg, rm_cfg, ppo_cfg, eval_cfg = stage_configs(cfg)
    for stage in (sft_cfg, rm_cfg, ppo_cfg, eval_cfg):   # a bad value stops now, not after SFT's minutes
        stage.validate()
    check_exists(cfg, *(name for name in ("init", "sft") if getattr(cfg, name)))   # and a missing model
    check_out(cfg.out)                                                              # and a file for --out
    written = ([sft_cfg] if trains_sft(cfg) else []) + [rm_cfg, ppo_cfg, eval_cfg]
    for out in [Path(cfg.out)] + [Path(stage.out) for stage in written]:           # or an input model
        check_not_an_input(out, cfg)
    pick_device(cfg.device)                                                         # and a missing GPU
    if not cfg.resume:       # a fresh start: the figures there are of runs about to be replaced
        for stale in PIPELINE_OUTPUTS:
            (Path(cfg.out) / stale).unlink(missing_ok=True)
    if trains_sft(cfg):
        sft.main(sft_cfg)
    rm_metrics = reward.main(rm_cfg)
    ppo.main(ppo_cfg)
    if not distributed.is_main():   # under torchrun: the training stages ran on every rank, the judging is rank 0's
        return {}
    eval_metrics = judged(eval_cfg) if cfg.resume else evaluate.main(eval_cfg)
    summary = {"reward_model": {k: rm_metrics[k] for k in ("heldout_gold_accuracy", "textbook_pairs_correct",
                                                             "ece", "length_baseline_accuracy")},
               **eval_metrics}
    # written once every stage has taken these flags: a rerun that a stage refuses leaves the
    # directory's config and figures as they were (each stage's own config is in its directory)
    write_json(Path(cfg.out) / "config.json", recorded_config("pipeline", cfg))
    write_json(Path(cfg.out) / "metrics.json", summary)
    write_text(Path(cfg.out) / "report.md", (Path(cfg.out) / "eval" / "report.md").read_text())
    status(f"pipeline done: gold win rate {eval_metrics['gold_win_rate_vs_sft']:.3f} "
           f"± {eval_metrics['gold_win_rate_se']:.3f}, "
           f"gold {eval_metrics['gold_mean_sft']:.3f} → {eval_metrics['gold_mean_policy']:.3f}\n"
           f"report: {Path(cfg.out) / 'report.md'}\n"
           f"answers to prompts of your own: rlhf sample --models {ppo_cfg.sft} {ppo_cfg.out} "
           f"--rm {rm_cfg.out}")
    return summary
