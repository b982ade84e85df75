"""Run directories: config, step log, final metrics, checkpoints, seeding, progress.

Every stage writes the same layout, and the next stage reads it by path:

    out/config.json          the stage's config dataclass, as run, and its number of torchrun processes
    out/inputs.json          sha256 of each input model and data file (resume checks them)
    out/metrics.jsonl        one JSON object per logged step
    out/metrics.json         the final figures
    out/model.safetensors    weights (+ the model config in the metadata)
    out/train_state.safetensors   weights, optimizer moments, step, RNG: for resume (the reward
                             model's train_state_<member>.safetensors, one per ensemble member)
    out/*.png                plots
    out/eval/                `rlhf eval`'s or `rlhf eval-rm`'s report on this run's model, by default
                             (a fresh start removes it with the rest)

Every file is written to a temporary name and renamed, so a killed run never
leaves a half-written file behind (rename is atomic on POSIX).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file, safe_open
from torch import nn

from rlhf_lab import distributed
from rlhf_lab.model import CausalLM, GPTConfig, MiniGPT, compile_blocks
from rlhf_lab.tokenizer import BYTES

SHIPPED_SFT = str(Path(__file__).parent / "checkpoints" / "sft")   # made by `rlhf sft` with defaults
# how flags and config.json name that checkpoint: a run directory recording it stays valid when
# copied to another machine or used by another install of the package
SHIPPED = "shipped"


# flags that name a language model, where "shipped" stands for that checkpoint
MODEL_FLAGS = ("sft", "init", "policy")


def model_path(path: str | Path) -> Path:
    """A model flag's path, with "shipped" standing for the shipped SFT checkpoint."""
    return Path(SHIPPED_SFT) if str(path) == SHIPPED else Path(path)


def flag_path(name: str, value: str) -> Path:
    """The path a path flag names: model_path for the model flags, the value itself for others
    (--rm shipped or --data shipped is a file of that name)."""
    return model_path(value) if name in MODEL_FLAGS else Path(value)


class ConfigError(ValueError):
    """A config value that cannot work, said in the flag's own words."""


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{flag(name)} must be one of {', '.join(choices)}; got {value!r}")


def flag_values(cfg, name: str) -> list:
    """A flag's values: a list flag's own (at least one), else its one value."""
    value = getattr(cfg, name)
    if value == []:
        raise ConfigError(f"{flag(name)} needs at least one value")
    return value if isinstance(value, list) else [value]


def check_finite(cfg, *names: str) -> None:
    """Float flags: inf and NaN pass a one-sided bound, and a model trained on them turns to NaN."""
    for name in names:
        for value in flag_values(cfg, name):
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{flag(name)} must be a finite number; got {value}")


# seeds in [0, SEEDS), as NumPy takes them: the seeds a stage derives (seed · 1,000,003 + step) then
# stay within the 64 bits torch's generators take
SEEDS = 2 ** 32


def check_numbers(cfg) -> None:
    """What every flag of its type must be, in any config: a float finite (check_finite), a seed
    (seed, *_seed) one the random generators take."""
    names = [f.name for f in dataclasses.fields(cfg)]
    check_finite(cfg, *names)
    for name in names:
        seed = getattr(cfg, name)
        if (name == "seed" or name.endswith("_seed")) and seed is not None and not 0 <= seed < SEEDS:
            raise ConfigError(f"{flag(name)} must be in [0, 2**32); got {seed}")


def check_positive(cfg, *names: str) -> None:
    """Counts, sizes and learning rates: zero or less is a mistake, not a setting."""
    check_finite(cfg, *names)
    for name in names:
        for value in flag_values(cfg, name):
            if not value > 0:
                raise ConfigError(f"{flag(name)} must be positive; got {value}")


def flags_off_default(cfg, names: tuple[str, ...]) -> list[str]:
    """The flags among names set away from their defaults, as the user would have typed them."""
    return [flag(name) for name in names if getattr(cfg, name) != getattr(type(cfg), name)]


def check_unused(cfg, names: tuple[str, ...], unused: bool, verb: str, why: str, lead: str = "") -> None:
    """Refuse the flags among names set away from their defaults where `unused`: the run would
    ignore them, yet record them in config.json as if they had changed it (and a change to one
    would then block a resume). `verb` agrees with them: "shape" gives "--x shapes", "--x, --y shape"."""
    given = flags_off_default(cfg, names)
    if unused and given:
        many = len(given) > 1
        raise ConfigError(f"{lead}{', '.join(given)} {verb if many else verb + 's'} {why}: drop "
                          f"{'them' if many else 'it'}")


def check_world_only(cfg, names: tuple[str, ...]) -> None:
    """With --data, the options that shape the world's own examples have nothing to act on."""
    check_unused(cfg, names, bool(cfg.data), "shape", "the assistant world's only",
                 lead=f"--data {cfg.data} brings its own examples; ")


def check_exists(cfg, *names: str) -> None:
    """Input paths: a missing one is named by its flag, since it may be a default the user never typed."""
    for name in names:
        if not getattr(cfg, name):                  # Path("") is the working directory, which exists
            raise ConfigError(f"{flag(name)} is empty; give a run directory or file")
        if not flag_path(name, getattr(cfg, name)).exists():
            raise ConfigError(f"{flag(name)} {getattr(cfg, name)}: no such run directory or file")


def check_out(out: str | Path, needed: str = "a run directory") -> Path:
    """--out as a path to write into, checked before any work: a file there, or a file on the way
    to it, would fail the first write with a bare OSError, after minutes of training or sampling."""
    if not str(out).strip():   # Path("") is the current directory: a run would write its files among the user's
        raise ConfigError(f"--out is empty; {needed} is needed")
    if str(out) == SHIPPED:    # every model flag reads "shipped" as the package's checkpoint, not this run
        raise ConfigError(f"--out {SHIPPED} names the shipped checkpoint to every model flag; write the run "
                          f"somewhere else (./{SHIPPED} works too)")
    path = Path(out)
    blocking = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocking == path:
        raise ConfigError(f"--out {path} is a file; {needed} is needed")
    if blocking is not None:
        raise ConfigError(f"--out {path}: {blocking} is a file, so {needed} cannot be made inside it")
    if path.is_dir() and is_hf_directory(path):   # its config.json would be replaced by the run's
        raise ConfigError(f"--out {path} holds a Hugging Face model; write the run somewhere else")
    return path


def check_non_negative(cfg, *names: str) -> None:
    """Weights, penalties and decay: a negative one would reward what it is meant to curb."""
    for name in names:
        check_range(cfg, name, 0.0)


def check_range(cfg, name: str, low: float, high: float = math.inf) -> None:
    check_finite(cfg, name)
    for value in flag_values(cfg, name):
        if not low <= value <= high:
            bound = f"at least {shown(low)}" if high == math.inf else f"in [{shown(low)}, {shown(high)}]"
            raise ConfigError(f"{flag(name)} must be {bound}; got {value}")


MIN_TEMPERATURE = 1e-3   # a smaller one can overflow the logits it divides: fp32 to inf, the probabilities to NaN


def check_temperature(cfg, name: str = "temperature") -> None:
    """A sampling temperature: 0 (greedy), or at least MIN_TEMPERATURE."""
    check_range(cfg, name, 0.0)
    for value in flag_values(cfg, name):
        if 0 < value < MIN_TEMPERATURE:
            raise ConfigError(f"{flag(name)} must be 0 (greedy) or at least {MIN_TEMPERATURE:g}; got {value:g}")


def shown(bound: float) -> str:
    """A bound as a message writes it: a count in full (1000000, not 1e+06), a share as 0.5."""
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


PARTIAL = ".partial"   # suffix of a file being written; one left behind was cut short by a kill (Run removes it)


def _atomic(path: Path, write) -> None:
    """write(tmp) to a temporary file beside path, flushed to disk, then renamed over path:
    a kill or a crash leaves the old file or the new one, never half of one. The directory is
    flushed after the rename too, which is what makes the rename itself survive a power cut."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=PARTIAL)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask)   # mkstemp's 0600 would hide results from other users
        flush_to_disk(Path(tmp))        # else a power cut after the rename can leave an empty file
        os.replace(tmp, path)
        flush_to_disk(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def flush_to_disk(path: Path) -> None:
    """fsync a file's contents, or a directory's entries (POSIX); a directory the system cannot
    open (Windows opens none) is skipped."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if path.is_dir():
            return
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, obj: Any) -> None:
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
    _atomic(Path(path), write)


def write_text(path: Path, text: str) -> None:
    _atomic(Path(path), lambda tmp: Path(tmp).write_text(text))


def save_figure(fig, path: Path) -> None:
    """A matplotlib figure as a PNG, written atomically like every other file of a run."""
    _atomic(Path(path), lambda tmp: fig.savefig(tmp, dpi=100, format="png"))


def read_json(path: Path) -> Any:
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON (invalid UTF-8 at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None


def read_config(path: Path) -> dict:
    """A config.json (a run directory's or a Hugging Face model's), which must hold a JSON object."""
    config = read_json(path)
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: not a JSON object, as a run directory's or a Hugging Face model's config is")
    return config


def recorded_stage(path: Path) -> str | None:
    """The stage whose run a directory holds, as its config.json records it (None: no run)."""
    config = path / "config.json"
    return read_config(config).get("stage") if config.is_file() else None


def check_same_stage(out: Path, stage: str) -> None:
    """A directory holding another stage's run is never cleared for this one: `rlhf train-rm
    --out runs/sft` would otherwise delete the SFT model it may even be reading."""
    other = recorded_stage(out)
    if other not in (None, stage):
        raise ConfigError(f"--out {out} holds an `rlhf {other}` run; choose another --out")


def fresh_report_directory(out: Path, stage: str, cfg, outputs: tuple[str, ...]) -> None:
    """An evaluation's --out, made ready before its work: not another stage's run nor an input
    model, and emptied of an earlier evaluation's files, so that a killed one leaves none to pass
    for its own."""
    check_not_an_input(out, cfg)
    check_same_stage(out, stage)
    for name in outputs:
        (out / name).unlink(missing_ok=True)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """safetensors refuses two names for one storage, which tied weights are (a Hugging
    Face model's input embedding and LM head): the second name gets its own copy, and
    loading the state dict ties them again."""
    seen, plain = set(), {}
    for name, tensor in tensors.items():
        tensor = tensor.detach().contiguous().cpu()
        storage = tensor.untyped_storage().data_ptr()
        plain[name] = tensor.clone() if storage in seen else tensor
        seen.add(storage)
    try:
        _atomic(Path(path), lambda tmp: save_file(plain, tmp, metadata=metadata))
    except SafetensorError as e:      # a full disk, say: the CLI reports an OSError in one line
        raise OSError(f"{path}: could not write the checkpoint ({e})") from None


@contextlib.contextmanager
def _safetensors_file(path: Path):
    """A checkpoint that is not a safetensors file (cut off, or another file) is a clear error."""
    try:
        yield
    except SafetensorError as e:
        raise ConfigError(f"{path}: not a readable safetensors checkpoint ({e})") from None


def tensor_metadata(path: Path) -> dict[str, str]:
    with _safetensors_file(path), safe_open(str(path), "pt") as f:
        return f.metadata() or {}


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    with _safetensors_file(path):
        return load_file(str(path))


def stream_seed(*keys: int) -> int:
    """The seed of one random stream, named by integers (a run's seed, which stream, a step, a
    rank). NumPy's SeedSequence hashes them, so distinct keys never share a stream, where seed +
    step would give --seed 1 at step i the stream of --seed 0 at step i + 1."""
    return int(np.random.SeedSequence(keys).generate_state(1, np.uint64)[0])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not re.fullmatch(r"cpu|cuda(?::[0-9]+)?", name):
        raise ConfigError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA device here (torch {torch.__version__}); "
                          "use --device cpu or auto")
    if ":" in name and int(name.split(":")[1]) >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                          "numbered from 0")
    return torch.device(name)


PRECISIONS = ("fp32", "bf16")


def autocast(device: torch.device, precision: str):
    """The stage's compute precision: fp32, or bf16 mixed precision.

    Mixed precision (Micikevicius et al. 2018): weights, gradients and AdamW moments stay
    fp32; autocast runs matmuls and attention in bf16 and keeps softmax, norms and losses in
    fp32. bf16 has fp32's exponent range, so unlike fp16 it needs no loss scaling. It pays
    where matmuls dominate, on a GPU with a wide model. The default MiniGPT (width 128) is
    bound by kernel launches on a GPU and the casts cost more than they save (H200: reward
    model 2,374 pairs/s in bf16 against 2,514 in fp32, PPO 176.9 against 236.7 episodes/s).
    On a CPU with bf16 matrix units (AMX) an SFT step is about 1.3x faster in bf16, the
    reward-model and PPO steps, made of smaller passes, are not (docs/benchmarks.md); without
    AMX it measured from no faster to 1.24x (a Muon SFT step on an AMD EPYC with AVX-512 BF16
    instructions, docs/sft.md). Hence fp32 by default.

    A stage runs whole inside one autocast region, so autocast's cache of bf16 weight
    copies is off: it lives until the region ends and would keep serving the weights of
    before the first optimizer step.
    """
    check_choice("precision", precision, PRECISIONS)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=False)


def compile_if(enabled: bool, *models: nn.Module) -> None:
    """--compile: torch.compile the transformer blocks of each MiniGPT (model.compile_blocks);
    a Hugging Face model runs eagerly, and the run says so."""
    if not enabled:
        return
    eager = sorted({type(model).__name__ for model in models if not compile_blocks(model)})
    if eager:
        status(f"--compile: {', '.join(eager)} has no MiniGPT blocks and runs eagerly")


def config_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def recorded_config(stage: str, cfg) -> dict:
    """What a stage's run directory records as config.json for cfg, with the number of torchrun
    processes: each trains on its own batch, so it multiplies the batch a step averages, and a
    run resumed on another number would not be the run it continues (a run that recorded none
    ran on as many as the resume, as far as anyone can tell: changed_flags)."""
    return {"stage": stage, **config_dict(cfg), "world_size": distributed.world_size()}


def read_log(run: str | Path) -> list[dict]:
    """A run directory's step log, metrics.jsonl, one dict per logged step ([] before the first),
    less a last line cut short: the log is appended to in place, so a crash or a full disk
    mid-write can leave half a line, and the steps it recorded are redone from the checkpoint
    anyway. A broken line before the last is an error."""
    log = Path(run) / "metrics.jsonl"
    lines = log.read_text().splitlines() if log.exists() else []
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):
                raise ConfigError(f"{log}:{number}: not a JSON line; the step log is damaged") from None
    return records


# the evaluations whose report goes into the run directory they judge by default (<run>/eval)
REPORT_STAGES = ("eval", "eval-rm")

# what a stage writes into its run directory, its plots (*.png) aside
STAGE_OUTPUTS = ("inputs.json", "metrics.jsonl", "metrics.json", "model.safetensors", "samples.json")

# what a resumed run may change: where its directory is named from, and the device it continues on
SAME_RUN_ANYWHERE = ("out", "device", "resume")


# flags naming a model or data file a stage reads (where they are strings: eval's --prompts is a
# count); a resumed run must read the same contents
INPUT_FLAGS = ("sft", "rm", "init", "policy", "data", "eval_data", "prompts", "ptx_data")


def input_digests(cfg, unread: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of what each given input flag names, so that resume compares contents, not paths:
    a reward model retrained at the same --rm must not pass as the one a run started with, and a
    run whose inputs moved (a copied checkout) is still the same run. unread: input flags this
    run does not read (PPO's --rm under the gold judge)."""
    paths = {name: flag_path(name, getattr(cfg, name)) for name in INPUT_FLAGS
             if name not in unread and isinstance(getattr(cfg, name, None), str) and getattr(cfg, name)}
    digests = {name: digest(path) for name, path in paths.items() if path.exists()}
    return {name: sha for name, sha in digests.items() if sha}


def digest(path: Path) -> str:
    """A file's sha256, whatever its name; a run directory's is its model.safetensors', a Hugging
    Face directory's that of every file in it (config, weights, tokenizer), by name. "" where
    there is no such file (a run directory not yet finished)."""
    if path.is_file():
        return file_sha256(path)
    files = sorted(p for p in path.iterdir() if p.is_file()) if is_hf_directory(path) else \
        [p for p in [path / "model.safetensors"] if p.exists()]
    if not files:
        return ""
    total = hashlib.sha256()
    for file in files:
        total.update(file.name.encode() + b"\0" + bytes.fromhex(file_sha256(file)))
    return total.hexdigest()


def file_sha256(path: Path) -> str:
    total = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            total.update(block)
    return total.hexdigest()


def changed_flags(path: Path, stage: str, cfg, config: dict, inputs: dict[str, str],
                  anywhere: tuple[str, ...] = SAME_RUN_ANYWHERE) -> list[str]:
    """The flags of cfg (recorded as `config`, its inputs' digests `inputs`) that a resume of the
    run in `path` may not change, and did: any but `anywhere` whose value differs from
    config.json (an input flag counts as unchanged when what it names has the contents
    inputs.json recorded, or, for a run that recorded none, when both name the same path), and
    any input whose contents changed under the same path."""
    old = read_config(path / "config.json") if (path / "config.json").exists() else {}
    old_inputs = read_json(path / "inputs.json") if (path / "inputs.json").exists() else {}
    default = recorded_config(stage, type(cfg)())     # what a run from before a flag existed ran with
    same_contents = {name for name, sha in inputs.items() if old_inputs.get(name) == sha}
    same_path = {name for name in MODEL_FLAGS if isinstance(old.get(name), str) and old[name] and config.get(name)
                 and model_path(old[name]).resolve() == model_path(config[name]).resolve()}   # the install path
    changed = [k for k in config if k not in anywhere and k not in same_contents | same_path
               and old.get(k, default.get(k)) != config[k]]
    changed += [f"{k}: {config[k]} changed since the run began" for k, sha in inputs.items()
                if k not in changed and old_inputs.get(k, sha) != sha]
    return sorted(changed)


def check_not_an_input(out: Path, cfg) -> None:
    """--out must not be the directory of an input model (--sft, --rm, --init, --policy): the run
    would replace the model or the records it reads, and a fresh start clears its directory's
    outputs first."""
    for name in ("sft", "rm", "init", "policy"):
        given = getattr(cfg, name, "")
        if given and run_directory(flag_path(name, given)).resolve() == out.resolve():
            raise ConfigError(f"--out {out} is also {flag(name)}: a run must not write over a model it reads")


class Run:
    """One stage's run directory: config.json, metrics.jsonl, metrics.json.

    With cfg.resume and a train state present, the directory is continued (its
    config must match), or left as it is if it already finished (`finished`); otherwise
    it starts afresh and stale logs are removed. inputs.json records the digests of the
    input files (input_digests; unread: input flags the run does not read).
    Under torchrun every rank reads the directory and rank 0 alone writes it.
    """

    def __init__(self, out: str | Path, stage: str, cfg, data_files: dict[str, dict] | None = None,
                 unread: tuple[str, ...] = ()) -> None:
        self.path = check_out(out)
        check_not_an_input(self.path, cfg)
        check_same_stage(self.path, stage)
        self.path.mkdir(parents=True, exist_ok=True)
        self.stage = stage
        self.started = time.perf_counter()
        self.earlier_seconds = 0.0      # a resumed run's time before it was stopped (resume_step)
        self.data_files = data_files or {}   # what loading each input file kept and skipped (data.load; metrics.json)
        self.device = str(pick_device(getattr(cfg, "device", "auto")))   # config.json may say only "auto"
        config, inputs = recorded_config(stage, cfg), input_digests(cfg, unread)
        states = list(self.path.glob("train_state*.safetensors"))
        finished = (self.path / "metrics.json").exists()   # written last, by finish(); its train state may be gone
        resumed = bool(getattr(cfg, "resume", False) and (states or finished))
        self.finished = resumed and finished
        if resumed:
            changed = changed_flags(self.path, stage, cfg, config, inputs)
            if changed:
                raise ConfigError(f"{self.path} holds a run with a different config ({', '.join(changed)}); "
                                  "pass --no-resume to start over or choose another --out")
        elif distributed.is_main():   # what a stage writes is stale: a fresh run killed early must not look finished
            for stale in states + [self.path / name for name in STAGE_OUTPUTS] + list(self.path.glob("*.png")):
                stale.unlink(missing_ok=True)
            if recorded_stage(self.path / "eval") in REPORT_STAGES:   # `rlhf eval`'s or eval-rm's default --out:
                shutil.rmtree(self.path / "eval")                     # a report on the model about to be replaced
        if distributed.is_main():
            for partial in self.path.glob(f".*{PARTIAL}"):   # cut short by a kill (_atomic)
                partial.unlink()
        if distributed.is_main() and not self.finished:    # a finished run is left as it is
            write_json(self.path / "config.json", config)
            if inputs:
                write_json(self.path / "inputs.json", inputs)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Append one step's metrics; the file is opened per call so a kill loses nothing."""
        if not distributed.is_main():
            return
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")

    def truncate_log(self, after_step: int, end_step: float = math.inf) -> None:
        """Drop log lines of steps after_step < step ≤ end_step, past a resumed checkpoint, so the
        log matches the weights (an ensemble member's span ends where the next member's begins)."""
        log = self.path / "metrics.jsonl"
        if not log.exists() or not distributed.is_main():
            return
        keep = [record for record in read_log(self.path) if not after_step < record["step"] <= end_step]
        _atomic(log, lambda tmp: Path(tmp).write_text("".join(json.dumps(record) + "\n" for record in keep)))

    def history(self) -> list[dict]:
        return read_log(self.path)

    def finished_metrics(self) -> dict:
        """A finished run's metrics.json, left untouched (its wall time included)."""
        status(f"{self.stage}: {self.path} already finished and kept; --no-resume runs it again "
               "(in a lab, another --out)")
        return read_json(self.path / "metrics.json")

    def seconds(self) -> float:
        """Wall time so far, over every session of a resumed run."""
        return self.earlier_seconds + time.perf_counter() - self.started

    def finish(self, metrics: dict) -> dict:
        metrics = {**metrics, **({"data_files": self.data_files} if self.data_files else {}),
                   "wall_seconds": round(self.seconds(), 2), "device": self.device,
                   "torch": torch.__version__}
        if distributed.is_main():
            write_json(self.path / "metrics.json", metrics)
        return metrics


def architecture(model: CausalLM) -> dict[str, str]:
    """Checkpoint metadata that rebuilds `model` without its weights: the GPTConfig, and
    for a Hugging Face model (hf.py) its own config and its tokenizer's files too."""
    meta = {"gpt_config": json.dumps(dataclasses.asdict(model.config))}
    if getattr(model, "hf", None) is not None:
        from rlhf_lab import hf
        meta["hf_config"] = model.hf.config.to_json_string()
        if isinstance(model.tokenizer, hf.HFTokenizer):
            meta |= hf.tokenizer_metadata(model.tokenizer)
    return meta


def empty_model(meta: dict[str, str]) -> CausalLM:
    """A freshly initialised model of the architecture that `architecture` recorded."""
    if "hf_config" in meta:
        from rlhf_lab import hf   # transformers is imported only by those who use an HF model
        tok = hf.tokenizer_from_metadata(meta["hf_tokenizer"]) if "hf_tokenizer" in meta else BYTES
        return hf.from_config_json(meta["hf_config"], tok)
    return MiniGPT(GPTConfig(**json.loads(meta["gpt_config"])))


def save_model(path: Path, model: nn.Module, extra: dict[str, str] | None = None) -> None:
    """Weights plus the architecture, so the file alone rebuilds the model."""
    save_tensors(path, model.state_dict(), {**architecture(model), **(extra or {})})


def load_model(path: str | Path, device: torch.device | str = "cpu") -> CausalLM:
    """A MiniGPT from a model.safetensors file or a run directory holding one, or an
    HFCausalLM from a Hugging Face `save_pretrained` directory (config.json with a model_type);
    "shipped" is the shipped SFT checkpoint."""
    path = model_path(path)
    if is_hf_directory(path):
        from rlhf_lab import hf   # transformers is imported only by those who load an HF model
        return hf.from_pretrained(path, device)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no model checkpoint here (expected a run directory "
                                "with model.safetensors)")
    meta = tensor_metadata(path)
    if "members" in meta:
        raise ConfigError(f"{path} holds a reward model; expected a language model (an `rlhf sft` or "
                          "`rlhf ppo` run directory)")
    if "gpt_config" not in meta and "hf_config" not in meta:
        raise ConfigError(f"{path} records no model architecture (a train state, or another program's file); "
                          "expected a run directory or its model.safetensors")
    model = empty_model(meta)
    load_state(model, load_tensors(path), path)
    return model.to(device)


def run_directory(path: str | Path) -> Path:
    """A run directory, named by itself or by a file in it (its model.safetensors)."""
    path = Path(path)
    return path.parent if path.is_file() else path


def is_hf_directory(path: Path) -> bool:
    """A run directory's config.json holds a stage config; an HF one names its model_type."""
    config = path / "config.json"
    return path.is_dir() and config.exists() and "model_type" in read_config(config)


def save_train_state(path: Path, modules: dict[str, nn.Module], optimizer: torch.optim.Optimizer,
                     step: int, seconds: float = 0.0, extra: dict[str, str] | None = None) -> None:
    """Everything a resumed run needs, as plain tensors (no pickle): weights,
    AdamW moments, the step, the torch RNG state, and the run's seconds so far; `extra`, a
    stage's own state, goes into the file's metadata (tensor_metadata reads it back)."""
    tensors = {f"{name}.{k}": v for name, m in modules.items() for k, v in m.state_dict().items()}
    for i, state in optimizer.state_dict()["state"].items():    # i: the parameter's index, as load reads it
        for key, value in state.items():
            tensors[f"optim.{i}.{key}"] = torch.as_tensor(value)
    tensors["rng.torch"] = torch.get_rng_state()
    save_tensors(path, tensors, {"step": str(step), "seconds": f"{seconds:.2f}", **(extra or {})})


def load_state(module: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """module.load_state_dict(state), where a buffer added to the module since the state was
    saved (a reward model's calibration temperature) keeps its default. Non-persistent buffers
    (Llama's rotary frequencies) are in no state dict. A ConfigError names `path`, the file the
    state came from, when its tensors do not fit the module (a tensor missing, unexpected or of
    another shape) or hold NaN or inf, which only a run that diverged saves: such a model would
    sample garbage or fail deep in the sampler."""
    buffers = {key for key, _ in module.named_buffers()}
    for key, value in module.state_dict().items():
        if key in buffers:
            state.setdefault(key, value)
    broken = sorted(key for key, value in state.items() if value.is_floating_point() and not value.isfinite().all())
    if broken:
        raise ConfigError(f"{path}: NaN or infinite weights ({', '.join(broken[:3])}{', ...' * (len(broken) > 3)}), "
                          "saved by a run that diverged; train it again (a lower --lr is the usual cure)")
    try:
        module.load_state_dict(state)
    except RuntimeError as e:        # torch lists each mismatch on its own line
        mismatches = "; ".join(line.strip().rstrip(". ") for line in str(e).splitlines()[1:])
        raise ConfigError(f"{path}: its tensors do not fit the model it describes ({mismatches})") from None


def load_train_state(path: Path, modules: dict[str, nn.Module], optimizer: torch.optim.Optimizer) -> int:
    """Restore what save_train_state wrote; returns the step to continue from."""
    tensors = load_tensors(path)
    for name, m in modules.items():
        prefix = f"{name}."
        load_state(m, {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}, path)
    opt_state = optimizer.state_dict()
    params = [p for group in opt_state["param_groups"] for p in group["params"]]
    for i, p in enumerate(params):
        keys = [k for k in tensors if k.startswith(f"optim.{i}.")]
        if keys:                      # a parameter that never had a gradient has no moments
            opt_state["state"][p] = {k.split(".", 2)[2]: tensors[k] for k in keys}
    optimizer.load_state_dict(opt_state)
    torch.set_rng_state(tensors["rng.torch"])
    return int(tensor_metadata(path)["step"])


def resume_step(run: Run, cfg, modules: dict[str, nn.Module], optimizer,
                name: str = "train_state.safetensors", log_offset: int = 0, log_end: float = math.inf) -> int:
    """Continue a killed run from its last train state (same config), else start at 0.
    Log lines written after that state, up to log_end, are dropped, so log and weights agree:
    with no state yet, every line from log_offset on (an ensemble member killed before its
    first checkpoint, whose run resumed from the members before it, starts again)."""
    state = run.path / name
    if not getattr(cfg, "resume", False):
        return 0
    if not state.exists():
        run.truncate_log(log_offset, log_end)
        return 0
    try:
        step = load_train_state(state, modules, optimizer)
    except ConfigError as e:
        raise ConfigError(f"{e}; pass --no-resume to start over") from None
    run.truncate_log(log_offset + step, log_end)
    run.earlier_seconds = float(tensor_metadata(state).get("seconds", 0.0))
    status(f"{run.stage}: resumed from {state} at step {step}")
    return step


def status(line: str) -> None:
    """One progress or result line on stdout (rank 0 only; see distributed.py)."""
    if distributed.is_main():
        print(line, flush=True)


def progress(total: int, desc: str, initial: int = 0):
    """A tqdm bar on stderr; quiet when not attached to a terminal or not rank 0."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, initial=initial, dynamic_ncols=True,
                disable=not distributed.is_main() or not sys.stderr.isatty())
