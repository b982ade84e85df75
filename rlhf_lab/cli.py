"""`rlhf <command>`: flags generated from each stage's config dataclass; no logic here.

    rlhf ppo --kl-coef 0.05 --sft runs/a/sft   →   ppo.main(PPOConfig(kl_coef=0.05, sft="runs/a/sft"))

A flag's help is the comment beside its field, so the dataclass is the one place
a default and its meaning are written down.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.metadata
import inspect
import os
import re
import sys
import types
import typing

DESCRIPTION = """\
rlhf-lab: the RLHF pipeline, small enough to read and run on a laptop.

  1. sft       supervised fine-tuning on instruction → response demonstrations
  2. train-rm  a reward model trained on preference pairs (Bradley-Terry)
  3. ppo       the policy optimised against the reward model with a KL leash
     eval      SFT versus the RLHF policy, judged by the world's gold judge
     sample    your own prompts answered by any of them, side by side

`rlhf pipeline` runs all of it on the embedded assistant world in one command.
Every stage writes a run directory (config.json, metrics.jsonl, metrics.json,
model.safetensors, plots); the next stage takes it as a path.
"""

# command → (module, config class, entry point, one-line help)
COMMANDS = {
    "sft": ("rlhf_lab.sft", "SFTConfig", "main", "stage 1: supervised fine-tuning"),
    "train-rm": ("rlhf_lab.reward", "RewardConfig", "main", "stage 2: train a reward model"),
    "eval-rm": ("rlhf_lab.reward", "RewardEvalConfig", "eval_main", "evaluate a trained reward model"),
    "ppo": ("rlhf_lab.ppo", "PPOConfig", "main", "stage 3: PPO against the reward model (D1-D21: docs/ppo.md)"),
    "eval": ("rlhf_lab.evaluate", "EvalConfig", "main", "SFT versus the RLHF policy, by the gold judge"),
    "sample": ("rlhf_lab.sample", "SampleConfig", "main", "trained models answer prompts of your own, side by side"),
    "pipeline": ("rlhf_lab.pipeline", "PipelineConfig", "main", "SFT → reward model → PPO → eval, one command"),
    "world export": ("rlhf_lab.world", "ExportConfig", "export_main",
                     "write the world's SFT, preference and textbook data as JSONL"),
    "world show": ("rlhf_lab.world", "ShowConfig", "show_main",
                   "a few prompts answered in every style, with the gold judge's scores"),
    "world judge": ("rlhf_lab.world", "JudgeConfig", "judge_main",
                    "the gold judge's verdict on one response, every term of the score"),
    "lab pooling": ("rlhf_lab.lab.pooling", "PoolingConfig", "main",
                    "last-token versus mean pooling reward models, several seeds"),
    "lab calibration": ("rlhf_lab.lab.calibration", "CalibrationConfig", "main",
                        "reward-model margins and reliability on seen versus unseen pairs"),
    "lab length-hack": ("rlhf_lab.lab.length_hack", "LengthHackConfig", "main",
                        "PPO on the flawed reward len/100, with and without the KL leash"),
    "lab multi-objective": ("rlhf_lab.lab.multi_objective", "MultiObjectiveConfig", "main",
                            "length-biased annotators, and 0.7·helpful + 0.3·concise against the verbosity trap"),
    "lab annotator-bias": ("rlhf_lab.lab.annotator_bias", "AnnotatorBiasConfig", "main",
                           "annotators who like markdown, hedges or flattery: the reward hack PPO builds from each"),
    "lab kl-sweep": ("rlhf_lab.lab.kl_sweep", "KLSweepConfig", "main",
                     "PPO at several KL coefficients: reward, gold and KL curves"),
    "lab overoptimization": ("rlhf_lab.lab.overoptimization", "OveroptimizationConfig", "main",
                             "gold vs proxy reward against sqrt(KL) for best-of-n and PPO (Gao et al. 2022)"),
    "lab ensemble": ("rlhf_lab.lab.ensemble", "EnsembleConfig", "main",
                     "over-optimization with one reward model versus a conservative 4-model ensemble"),
    "lab advantage": ("rlhf_lab.lab.advantage", "AdvantageConfig", "main",
                      "GAE with a critic versus the critic-free running-mean and leave-one-out (RLOO) baselines"),
    "lab oracle": ("rlhf_lab.lab.oracle", "OracleConfig", "main",
                   "PPO against a learned reward model versus against the gold judge itself"),
    "lab alignment-tax": ("rlhf_lab.lab.alignment_tax", "AlignmentTaxConfig", "main",
                          "plain PPO against PPO-ptx: the facts PPO costs the SFT model, greedy and sampled"),
    "lab temperature": ("rlhf_lab.lab.temperature", "TemperatureConfig", "main",
                        "SFT versus the RLHF policy at each sampling temperature: more than sharpening?"),
}
GROUP_HELP = {"world": "the embedded assistant world and its gold judge",
              "lab": "the textbook's experiments, each writing plots and a report (--quick for a small version)"}


def field_comments(cls) -> dict[str, str]:
    """`name: type = default  # meaning` → {name: meaning}, read from the class source; a
    comment-only line right below continues the meaning."""
    comments, last = {}, None
    for line in inspect.getsource(cls).splitlines():
        field = re.match(r"^\s+(\w+):[^#\n]*#\s*(.+)$", line)
        more = re.match(r"^\s+#\s*(.+)$", line)
        if field:
            last, comments[field[1]] = field[1], field[2]
        elif more and last:
            comments[last] += " " + more[1]
        else:
            last = None
    return comments


def shown_default(default) -> str:
    """A flag's default as --help shows it: the shipped checkpoint by name, not by install path; a
    list as its values would be typed ("0.001 0.02 0.5", not "[0.001, 0.02, 0.5]"); None as
    what it is, a flag not given."""
    from rlhf_lab.run import SHIPPED
    if isinstance(default, list):
        return " ".join(str(value) for value in default)
    if default is None:
        return "not given"
    return "shipped (the SFT checkpoint in the package)" if default == SHIPPED else "empty" if default == "" else str(default)


def add_config_flags(parser: argparse.ArgumentParser, cls) -> None:
    hints, comments = typing.get_type_hints(cls), field_comments(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        comment = comments.get(f.name, "")
        help_text = comment if "(default:" in comment else f"{comment} (default: {shown_default(default)})"
        help_text = help_text.replace("%", "%%")       # argparse formats help with %: "5%" is text here
        if kind is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=default, help=help_text)
        else:
            base = typing.get_args(kind)[0] if typing.get_origin(kind) in (typing.Union, types.UnionType, list) else kind
            nargs = "+" if typing.get_origin(kind) is list else None
            parser.add_argument(flag, dest=f.name, type=base, nargs=nargs, default=default,
                                help=help_text)


def build_parser(commands: dict = COMMANDS, flags_for: set[str] | None = None) -> argparse.ArgumentParser:
    """One subparser per command; "world export" and "lab pooling" nest under a group.

    Only the commands in flags_for (all when None) get their flags, read from their config
    class: that import pulls in torch, about two seconds that `rlhf --help` need not wait."""
    parser = argparse.ArgumentParser(prog="rlhf", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"rlhf-lab {installed_version()}")
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, (module, cls_name, entry, help_line) in commands.items():
        group, _, leaf = name.rpartition(" ")
        if group and group not in groups:
            groups[group] = top.add_parser(group, help=GROUP_HELP[group]).add_subparsers(
                dest="action", required=True, metavar="ACTION")
        cmd = (groups[group] if group else top).add_parser(leaf, help=help_line, description=help_line)
        if flags_for is None or name in flags_for:
            add_config_flags(cmd, getattr(importlib.import_module(module), cls_name))
        cmd.set_defaults(_target=(module, cls_name, entry))
    return parser


def installed_version() -> str:
    try:
        return importlib.metadata.version("rlhf-lab")
    except importlib.metadata.PackageNotFoundError:   # run from a source tree that was never installed
        return "(not installed)"


def named_command(argv: list[str]) -> str | None:
    """The command the leading words of argv name ("sft", "lab oracle"), if any."""
    for words in (argv[:2], argv[:1]):
        if " ".join(words) in COMMANDS:
            return " ".join(words)
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(flags_for={named_command(argv)}).parse_args(argv)   # --help exits here, torch unloaded
    from rlhf_lab import distributed
    from rlhf_lab.data import DataError
    from rlhf_lab.run import ConfigError

    module, cls_name, entry = args._target
    mod = importlib.import_module(module)
    values = {k: v for k, v in vars(args).items() if k not in ("_target", "command", "action")}
    try:
        getattr(mod, entry)(getattr(mod, cls_name)(**values))
    except BrokenPipeError:             # `rlhf world show | head` closed our stdout: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (DataError, ConfigError, OSError) as e:   # OSError: a missing file, a read-only --out, a full disk
        print(f"rlhf: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:           # Ctrl-C: the last checkpoint is on disk, a traceback says nothing
        print("\nrlhf: interrupted; run the same command again to continue a training stage, pipeline or lab "
              "from its last checkpoint", file=sys.stderr)
        return 130
    distributed.close()   # after success only: on an error the other ranks may never reach its barrier
    return 0


if __name__ == "__main__":
    sys.exit(main())
