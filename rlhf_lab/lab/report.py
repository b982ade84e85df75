"""A lab report (markdown sections and a JSON of the figures, written atomically), and the
runs experiments train: reward models trained once and shared, PPO runs kept or continued."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from rlhf_lab.run import (
    SAME_RUN_ANYWHERE, changed_flags, input_digests, read_json, recorded_config, status, write_json, write_text)


@dataclass
class Report:
    title: str
    out: Path
    figures: dict = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def say(self, text: str = "") -> None:
        self.lines.append(text)

    def table(self, header: list[str], rows: list[list]) -> None:
        def fmt(v):
            return f"{v:.3f}" if isinstance(v, float) else str(v)
        self.lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        self.lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
        self.lines.append("")

    def image(self, filename: str, caption: str) -> None:
        self.lines += [f"![{caption}]({filename})", ""]

    def write(self) -> dict:
        write_text(self.out / "report.md", "\n".join([f"# {self.title}", ""] + self.lines) + "\n")
        write_json(self.out / "report.json", self.figures)
        status(f"{self.title}: report at {self.out / 'report.md'}")
        return self.figures


def start(cfg, name: str) -> tuple[Path, bool]:
    """An experiment's directory, once its flags are valid, with the config.json every run
    directory has (`name`: the command, "lab pooling"); each of its runs keeps its own.

    Also whether its runs continue: an experiment rerun with the flags of the one in its
    directory (killed, or finished; --out and --device aside) keeps each finished run and
    resumes a killed one from its last checkpoint, as the stages do, since every run is a
    function of those flags. With other flags every train state under it is removed first, so
    no run of the old flags is continued or kept, now or after a kill; a finished reward model
    made with the same settings is still reused (reward_model_once)."""
    cfg.validate()
    out = Path(cfg.out)
    recorded = recorded_config(name, cfg)
    old = read_json(out / "config.json") if (out / "config.json").exists() else None
    resume = old is not None and all(old.get(k) == v for k, v in recorded.items() if k not in SAME_RUN_ANYWHERE)
    if not resume:
        for state in out.rglob("train_state*.safetensors"):
            state.unlink()
    write_json(out / "config.json", recorded)
    if resume:
        status(f"{name}: {out} holds a run with these flags: its finished runs are kept and a killed one "
               "resumes (another --out starts afresh)")
    return out, resume


def made_otherwise(cfg, stage: str) -> bool:
    """Whether cfg.out holds a `stage` run made with other settings or inputs than cfg's (the
    library's defaults moved, or a model it read was retrained). Inside an experiment, which has
    no --no-resume, such a run starts over instead of being refused as the stage would refuse it."""
    out = Path(cfg.out)
    return (out / "config.json").exists() and bool(
        changed_flags(out, stage, cfg, recorded_config(stage, cfg), input_digests(cfg)))


def reward_model_once(cfg) -> Path:
    """cfg.out's reward model (a RewardConfig): a finished run made with these very settings and
    inputs is kept (also after an experiment's other flags changed, if they leave it as it was);
    otherwise trained now, continuing a killed run with cfg.resume, or afresh where the run
    there was made otherwise."""
    from rlhf_lab.reward import train_reward
    out, otherwise = Path(cfg.out), made_otherwise(cfg, "train-rm")
    if not ((out / "metrics.json").exists() and (out / "config.json").exists() and not otherwise):
        train_reward(replace(cfg, resume=cfg.resume and not otherwise))
    return out


def train_ppo_once(cfg, **reward) -> None:
    """ppo.train_ppo(cfg, **reward) for an experiment: a finished run with these settings and
    inputs is kept and a killed one continued (cfg.resume: start's verdict), and one made
    otherwise starts over (made_otherwise)."""
    from rlhf_lab.ppo import train_ppo
    train_ppo(replace(cfg, resume=cfg.resume and not made_otherwise(cfg, "ppo")), **reward)


def world_reward_model(out: Path, pairs: int, quick: bool, device: str, resume: bool, name: str = "rm",
                       **settings) -> Path:
    """out/name: a reward model of the default world on `pairs` training pairs (a small one when
    quick), with RewardConfig `settings` on top, trained once for an experiment that compares
    PPO runs against it (resume: start's verdict)."""
    from rlhf_lab.reward import RewardConfig
    return reward_model_once(RewardConfig(out=str(out / name), device=device, resume=resume, **settings,
                                          **(dict(pairs=256, epochs=1, norm_samples=64, heldout_pairs=100)
                                             if quick else dict(pairs=pairs))))


def lab_ppo(iterations: int, quick: bool, device: str, resume: bool, **settings):
    """An experiment's PPO settings (a PPOConfig): the defaults at `iterations` with `settings`
    on top, or, when quick, 3 iterations of 16 episodes on the same code path (resume: start's
    verdict)."""
    from rlhf_lab.ppo import PPOConfig
    small = dict(iterations=3, batch_size=16, minibatch_size=16) if quick else {}
    return PPOConfig(**{"iterations": iterations, "device": device, "resume": resume, **settings, **small})


def lab_judging(rm: Path, quick: bool, device: str, **settings):
    """How an experiment judges a policy against SFT (an EvalConfig for `evaluate.compare`):
    `rlhf eval`'s defaults with `settings` on top, or, when quick, one answer to each of 8 prompts."""
    from rlhf_lab.evaluate import EvalConfig
    small = dict(prompts=8, samples_per_prompt=1) if quick else {}
    return EvalConfig(**{"rm": str(rm), "device": device, **settings, **small})
