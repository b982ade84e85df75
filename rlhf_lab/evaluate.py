"""Measuring against the gold judge: samples, style mix, win rates, tables and plots.

Every claim the project makes (the SFT model imitates every style, the reward
model agrees with gold, PPO improves answers, over-optimization) is computed here
from the world's gold judge, never eyeballed.
"""
from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from rlhf_lab.model import CausalLM, SamplingConfig, token_logprobs
from rlhf_lab.rollout import Rollout, ended_flags, response_texts, sample_rollouts
from rlhf_lab.run import (
    PRECISIONS, SHIPPED, ConfigError, Run, autocast, check_choice, check_exists, check_non_negative, check_numbers,
    check_out, check_positive, check_temperature, fresh_report_directory, input_digests, load_model, model_path,
    pick_device, read_config, read_log, recorded_config, run_directory, save_figure, status, write_json, write_text)
from rlhf_lab.world import SPLITS, STYLES, Judgement, World, WorldConfig


def judge_texts(world: World, prompts: list[str], responses: list[str], finished: list[bool] | None = None) -> dict:
    """Gold mean, well-formed rate, style mix, slip share (summarize) and mean length of a set of
    responses (finished: as judge_all takes it)."""
    return {**summarize(judge_all(world, prompts, responses, finished)), "mean_len": mean_bytes(responses)}


def mean_bytes(responses: list[str]) -> float:
    return sum(len(r.encode()) for r in responses) / len(responses)


def judge_all(world: World, prompts: list[str], responses: list[str],
              finished: list[bool] | None = None) -> list[Judgement]:
    """The gold judge's verdicts; finished[i] False: response i was cut at the length limit
    before its EOS (World.judge), which `rlhf eval` knows from its own sampling."""
    return [world.judge(p, r, f) for p, r, f in zip(prompts, responses, finished or [True] * len(responses))]


def summarize(judgements: list[Judgement]) -> dict:
    """Gold mean, well-formed rate and style mix of a set of verdicts, and the share that are
    slips: wrong without naming any of the fact's plausible wrong answers (a garbled name,
    another fact's answer), which sampling a byte model at temperature 1 makes and the wrong
    style of the data does not teach."""
    counts, n = Counter(j.style for j in judgements), len(judgements)
    return {"gold_mean": sum(j.score for j in judgements) / n,
            "well_formed_rate": 1 - counts[None] / n,
            "style_mix": {s: counts[s] / n for s in STYLES},
            "slip_rate": sum(j.style == "wrong" and not j.decoy for j in judgements) / n}


def sample_and_judge(model: CausalLM, world: World, prompts: list[str], sampling: SamplingConfig,
                     seed: int) -> dict:
    rollouts = sample_rollouts(model, prompts, sampling, seed=seed)
    return judge_texts(world, prompts, response_texts(rollouts), ended_flags(rollouts))


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_format(v)}" for k, v in value.items()) or "none"
    return str(value)


def table(title: str, metrics: dict) -> str:
    """A two-column text table of a run's final figures. A figure that is itself a record of
    records (SFT's train_prompts, a stage's data_files) gets a row per entry, name.entry, so
    that no row runs on for a screen."""
    rows = []
    for name, value in metrics.items():
        if isinstance(value, dict) and any(isinstance(entry, dict) for entry in value.values()):
            rows += [(f"{name}.{key}", entry) for key, entry in value.items()]
        else:
            rows.append((name, value))
    width = max(len(name) for name, _ in rows)
    return "\n".join([f"== {title}"] + [f"{name:<{width}}  {_format(v)}" for name, v in rows])


def plot_history(run: Run, keys: list[str], title: str, filename: str) -> None:
    """Curves of logged metrics against step, one PNG in the run directory."""
    plot_runs({run.stage: run.path}, keys, run.path / filename, title)


def plot_runs(runs: dict[str, Path], keys: list[str], path: Path, title: str) -> None:
    """Curves of several runs' metrics.jsonl, one panel per metric, one line per run."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.2), squeeze=False)
    for label, run in runs.items():
        history = read_log(run)
        for ax, key in zip(axes[0], keys):
            points = [(h["step"], h[key]) for h in history if key in h]
            if points:
                ax.plot(*zip(*points), label=label, marker="o" if len(points) < 12 else None)
            ax.set_title(key)
            ax.set_xlabel("step")
    if len(runs) > 1:
        axes[0][0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


# ---------------------------------------------------------------- reward models

def pair_scores(chosen: Tensor, rejected: Tensor) -> Tensor:
    """Per pair, 1 where the chosen answer gets the higher reward, 0.5 on a tie, else 0: (N,)."""
    return (chosen > rejected).float() + 0.5 * (chosen == rejected).float()


def pair_accuracy(chosen: Tensor, rejected: Tensor) -> float:
    """Share of pairs where the chosen answer gets the higher reward (ties count half)."""
    return pair_scores(chosen, rejected).mean().item()


def expected_calibration_error(chosen: Tensor, rejected: Tensor, bins: int = 10) -> tuple[float, list]:
    """ECE of the Bradley-Terry probability σ(r_c - r_r) (Guo et al. 2017).

    Each pair's prediction is the side the model favours, with confidence
    max(p, 1-p), right as pair_accuracy counts it (a tie, p = 0.5, half right); a bin's gap
    is |accuracy - mean confidence|. Returns the ECE and (confidence, accuracy, count) per
    non-empty bin for the reliability diagram.
    """
    p = torch.sigmoid(chosen - rejected)                                   # (N,)
    confidence, correct = torch.maximum(p, 1 - p), pair_scores(chosen, rejected)
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


def calibration_noise_floor(chosen: Tensor, rejected: Tensor, draws: int = 200) -> float:
    """The ECE a perfectly calibrated model with these confidences would show on this many
    pairs: labels drawn from σ(r_c - r_r) itself, mean ECE over `draws` draws. Binned ECE is
    biased upwards by sampling noise (about 0.03 on 500 world pairs), so a measured ECE
    means little until it stands clear of this floor."""
    p = torch.sigmoid(chosen - rejected)                                     # (N,)
    generator = torch.Generator().manual_seed(0)
    total = 0.0
    for _ in range(draws):
        kept = torch.bernoulli(p, generator=generator).bool()               # (N,) the chosen side stays chosen
        total += expected_calibration_error(torch.where(kept, chosen, rejected),
                                            torch.where(kept, rejected, chosen))[0]
    return total / draws


def reliability_plot(table: list, path: Path, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0.5, 1], [0.5, 1], "k--", label="perfect calibration")
    conf, acc, n = zip(*table) if table else ((), (), ())
    ax.scatter(conf, acc, s=[10 + 200 * k / max(n) for k in n], label="bins (size = pairs)")
    ax.set_xlabel("confidence σ(|r_c - r_r|)")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def length_rule_scores(pairs: list) -> Tensor:
    """Per pair, 1 where the better of "longer wins" and "shorter wins" on these pairs orders it
    as labelled, 0 where not, 0.5 on equal lengths: (N,)."""
    longer = torch.tensor([(len(p.chosen) > len(p.rejected)) + 0.5 * (len(p.chosen) == len(p.rejected))
                           for p in pairs], dtype=torch.float64)
    return longer if longer.sum() >= len(pairs) / 2 else 1 - longer


def length_baseline_accuracy(pairs: list) -> float:
    """The better length rule's accuracy: an upper bound on what any length-only rule can
    reach on these pairs, so beating it means more than length."""
    return length_rule_scores(pairs).mean().item()


def beyond_length_baseline(pairs: list, chosen: Tensor, rejected: Tensor) -> tuple[float, float]:
    """Accuracy above the better length rule on the same pairs, and its standard error: a
    paired comparison, per pair (model right) − (rule right), which tells a gain from noise
    on a few hundred pairs better than two separate accuracies do."""
    diff = pair_scores(chosen, rejected).cpu().double() - length_rule_scores(pairs)   # (N,)
    se = diff.std().item() / len(diff) ** 0.5 if len(diff) > 1 else float("nan")
    return diff.mean().item(), se


def accuracy_per(key: str, pairs: list, chosen: Tensor, rejected: Tensor) -> dict[str, dict]:
    """Pairs, accuracy, the better length rule's accuracy and the paired gain over it, for each
    value of the rows' `key` (LLMBar's subsets, TruthfulQA's categories): a file that pools
    sources of different difficulty is read per source, as its curators ask. Rows without the
    key, or with null, count in the headline figures only; no row with it: {}. Values are
    scalars (data.count_with_value), named as value_name spells them."""
    rows = defaultdict(list)
    for i, pair in enumerate(pairs):
        if pair.meta.get(key) is not None:
            rows[value_name(pair.meta[key])].append(i)
    figures = {}
    for value, index in sorted(rows.items()):
        picked, subset = torch.tensor(index), [pairs[i] for i in index]
        gain, gain_se = beyond_length_baseline(subset, chosen[picked], rejected[picked])
        figures[value] = {"pairs": len(index), "accuracy": pair_accuracy(chosen[picked], rejected[picked]),
                          "length_baseline_accuracy": length_baseline_accuracy(subset),
                          "beyond_length_baseline": gain, "beyond_length_baseline_se": gain_se}
    return figures


def value_name(value: str | float | bool) -> str:
    """A JSON scalar as a group's name: a string as itself, anything else as JSON writes it (true,
    not Python's True), a whole number once whether written 1 or 1.0."""
    if isinstance(value, str):
        return value
    return json.dumps(int(value) if isinstance(value, float) and value.is_integer() else value)


def per_table(key: str, figures: dict[str, dict]) -> str:
    """accuracy_per's figures as a text table."""
    width = max([len(key), *map(len, figures)])
    lines = [f"== by {key}", f"{key:<{width}}  pairs  model  length rule  gain over it"]
    for value, f in figures.items():
        lines.append(f"{value:<{width}}  {f['pairs']:>5}  {f['accuracy']:.3f}  {f['length_baseline_accuracy']:>11.3f}"
                     f"  {f['beyond_length_baseline']:+.3f} ± {f['beyond_length_baseline_se']:.3f}")
    return "\n".join(lines)


def gold_accuracy(world: World, pairs: list, chosen: Tensor, rejected: Tensor) -> tuple[float, int]:
    """Agreement with the gold ordering on pairs whose gold scores differ (a tied reward half
    agrees, as pair_accuracy counts it), and how many such pairs; nan where there are none."""
    agree, n = 0.0, 0
    for pair, c, r in zip(pairs, chosen.tolist(), rejected.tolist()):
        gold_c, gold_r = world.gold(pair.prompt, pair.chosen), world.gold(pair.prompt, pair.rejected)
        if gold_c != gold_r:
            agree += 0.5 if c == r else float((c > r) == (gold_c > gold_r))
            n += 1
    return agree / n if n else math.nan, n


def reward_report(model, train: list, heldout: dict[str, list], world: World | None, out: Path,
                  device, per: str = "") -> dict:
    """Training accuracy, the textbook pairs, and with held-out sets heldout_figures."""
    from rlhf_lab.data import PreferencePair
    from rlhf_lab.reward import score_pairs
    from rlhf_lab.world import TEXTBOOK_PAIRS

    metrics = {}
    if train:
        metrics["train_accuracy"] = pair_accuracy(*score_pairs(model, train[:2000], device))
    if heldout:
        metrics.update(heldout_figures(model, heldout, world, out, device, per))
    textbook = [PreferencePair(t["prompt"], t["preferred"], t["rejected"]) for t in TEXTBOOK_PAIRS]
    tc, tr = score_pairs(model, textbook, device)
    metrics["textbook_pairs_correct"] = int((tc > tr).sum())
    return metrics


def heldout_figures(model, heldout: dict[str, list], world: World | None, out: Path, device, per: str = "") -> dict:
    """Accuracy, margin, calibration, gold agreement and the length baseline.

    The headline figures (heldout_*, ece, margin, length baseline) are on the first
    held-out set: the world's unseen prompts of training facts (what PPO is judged
    on) or the given file. Every set also gets <name>_accuracy and, on the world,
    <name>_gold_accuracy (by template and by fact: facts the model never saw). per: a row
    key whose values split the headline set (accuracy_per), "" for none.
    """
    from rlhf_lab.reward import RewardModel, score_pairs

    scored = {name: score_pairs(model, pairs, device) for name, pairs in heldout.items()}
    headline = next(iter(heldout))
    chosen, rejected = scored[headline]
    # calibration of P(chosen ≻ rejected) = σ(r_c − r_r) on the trained scale: the
    # normalisation for PPO divides by the reward's spread and would distort it
    raw = ([r * model.scale.cpu() + model.offset.cpu() for r in scored[headline]] if isinstance(model, RewardModel)
           else score_pairs(model, heldout[headline], device, raw=True))     # one model's normalisation is affine
    ece, bins = expected_calibration_error(*raw)
    gain, gain_se = beyond_length_baseline(heldout[headline], chosen, rejected)
    metrics = dict(heldout_accuracy=pair_accuracy(chosen, rejected),
                   length_baseline_accuracy=length_baseline_accuracy(heldout[headline]),
                   beyond_length_baseline=gain, beyond_length_baseline_se=gain_se,
                   chosen_reward_mean=chosen.mean().item(), rejected_reward_mean=rejected.mean().item(),
                   margin=(chosen - rejected).mean().item(), ece=ece,
                   ece_noise_floor=calibration_noise_floor(*raw), heldout_pairs=len(chosen))
    if world is not None:
        metrics["heldout_gold_accuracy"], metrics["heldout_gold_pairs"] = gold_accuracy(
            world, heldout[headline], chosen, rejected)
    if per:
        metrics[f"by_{per}"] = accuracy_per(per, heldout[headline], chosen, rejected)
    for name, (c, r) in scored.items():
        metrics[f"{name}_accuracy"] = pair_accuracy(c, r)
        if world is not None:
            metrics[f"{name}_gold_accuracy"] = gold_accuracy(world, heldout[name], c, r)[0]
    reliability_plot(bins, out / "reliability.png", f"reward model calibration (ECE {ece:.3f})")
    return metrics


def pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


# ---------------------------------------------------------------- SFT versus the RLHF policy

@dataclass
class EvalConfig:
    policy: str = "runs/ppo"        # `rlhf ppo` run directory (the RLHF policy)
    sft: str = ""                   # SFT run directory (the baseline and the KL reference); empty → the one the
                                    # policy was trained from (its config.json), else the shipped checkpoint
    rm: str = ""                    # reward model for the proxy reward; empty → the policy's, else runs/rm (a
                                    # policy trained with --reward gold has none: no proxy figures then)
    out: str = ""                   # where report.md / metrics.json go (default: <policy>/eval)
    world_seed: int | None = None   # the world whose held-out prompts are used (default: the policy's own, as
                                    # its config.json records it, else 0)
    split: str = "heldout_prompt"   # prompts: "heldout_prompt" | "heldout_template" | "heldout_fact"
                                    # (or "train", or "textbook": the six textbook prompts)
    prompts: int = 500              # how many held-out prompts, at most (the default split has 137)
    samples_per_prompt: int = 4     # answers per prompt from each model; comparison j pairs answer j of each
    max_new_tokens: int = 192       # response length limit, bytes
    temperature: float = 1.0        # both models sample at it; 0: greedy, one answer per prompt; KL only at 1
    shown: int = 12                 # side-by-side samples in report.md
    seed: int = 0                   # sampling seed (the same for both models)
    device: str = "auto"            # "auto" | "cpu" | "cuda"
    precision: str = "fp32"         # "fp32" | "bf16" autocast (for wide models; slower at width 128)

    def validate(self) -> None:
        check_numbers(self)
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("split", self.split, SPLITS)
        check_positive(self, "prompts", "samples_per_prompt", "max_new_tokens")
        check_non_negative(self, "shown")
        check_temperature(self)

    def with_policy_defaults(self) -> EvalConfig:
        """--sft, --rm and --world-seed, where not given, as the policy's `rlhf ppo` run recorded
        them: comparing a policy with another SFT model than its own would measure the wrong
        improvement and KL, and another world's held-out prompts can be ones it trained on."""
        config = run_directory(model_path(self.policy)) / "config.json"
        recorded = read_config(config) if config.exists() else {}
        world_seed = self.world_seed if self.world_seed is not None else recorded.get("world_seed", 0)
        trained_rm = "" if recorded.get("reward") == "gold" else recorded.get("rm") or "runs/rm"
        return replace(self, sft=self.sft or recorded.get("sft") or SHIPPED, rm=self.rm or trained_rm,
                       world_seed=world_seed)

    def answers_per_prompt(self) -> int:
        """Greedy answers repeat, and repeated comparisons would shrink the standard error for nothing."""
        return 1 if self.temperature == 0 else self.samples_per_prompt


def not_what_the_policy_read(cfg: EvalConfig, inputs: dict[str, str]) -> list[str]:
    """Which of --sft and --rm (inputs: cfg's input_digests) hold other contents than the policy's
    `rlhf ppo` run read, by its inputs.json: another model given on purpose, or the same path
    retrained since."""
    recorded = run_directory(model_path(cfg.policy)) / "inputs.json"
    read = read_config(recorded) if recorded.exists() else {}
    return [name for name in ("sft", "rm") if name in read and name in inputs and read[name] != inputs[name]]


def clustered_mean(prompts: list[str], values: list[float]) -> tuple[float, float]:
    """The mean of per-answer values and its standard error. One prompt's answers are not
    independent (a fact both models lack loses all its comparisons), so the error is the spread
    of per-prompt means over √prompts, a cluster standard error; with one answer per prompt it
    is the plain one (with one prompt, NaN)."""
    groups: dict[str, list[float]] = {}
    for prompt, value in zip(prompts, values):
        groups.setdefault(prompt, []).append(value)
    per_prompt = torch.tensor([sum(g) / len(g) for g in groups.values()], dtype=torch.float64)   # (prompts,)
    spread = per_prompt.std().item() if len(per_prompt) > 1 else float("nan")
    return sum(values) / len(values), spread / len(per_prompt) ** 0.5


def win_rate(prompts: list[str], policy: list[Judgement], sft: list[Judgement]) -> tuple[float, float]:
    """Gold win rate of the policy over SFT, one sample each per comparison, ties half, and its
    clustered standard error."""
    return clustered_mean(prompts, [1.0 if a.score > b.score else 0.5 if a.score == b.score else 0.0
                                    for a, b in zip(policy, sft)])


def by_family(world: World, prompts: list[str], policy: list[Judgement], sft: list[Judgement]) -> dict[str, dict]:
    """Where the policy wins and loses: per task family, the comparisons, the policy's gold win
    rate over SFT, and each model's gold mean and wrong, slip and unparseable shares."""
    rows: dict[str, list[int]] = {}
    for i, prompt in enumerate(prompts):
        rows.setdefault(world.task(prompt).family, []).append(i)
    figures = {}
    for family, chosen in sorted(rows.items()):
        verdicts = {"sft": [sft[i] for i in chosen], "policy": [policy[i] for i in chosen]}
        figures[family] = {"comparisons": len(chosen), "gold_win_rate_vs_sft": win_rate(
            [prompts[i] for i in chosen], verdicts["policy"], verdicts["sft"])[0]}
        for name, judgements in verdicts.items():
            judged = summarize(judgements)
            figures[family].update({f"gold_mean_{name}": judged["gold_mean"],
                                    f"wrong_{name}": judged["style_mix"]["wrong"], f"slip_{name}": judged["slip_rate"],
                                    f"unparseable_{name}": 1 - judged["well_formed_rate"]})
    return figures


@torch.no_grad()
def kl_per_response(policy: CausalLM, reference: CausalLM, rollouts: list[Rollout]) -> tuple[float, float]:
    """KL(π‖π_ref) in nats per response and its clustered standard error: per policy sample,
    Σ_t log π - log π_ref, whose mean over samples estimates the KL (one sample may be negative,
    the mean only by chance). Summed over the sampled tokens themselves (EOS included where one
    was sampled): decoded and re-encoded text would differ where a cut response gains an EOS or
    broken UTF-8 decodes to U+FFFD."""
    kls = []
    for r in rollouts:
        lp, _ = token_logprobs(policy, r.tokens, r.mask, r.prompt_len)               # (B, N)
        ref, _ = token_logprobs(reference, r.tokens, r.mask, r.prompt_len)           # (B, N)
        kls += ((lp - ref) * r.response_mask).sum(-1).tolist()
    return clustered_mean([p for r in rollouts for p in r.prompts], kls)


def proxy_scores(reward_model, prompts: list[str], responses: list[str], device) -> Tensor:
    from rlhf_lab.reward import score_texts

    with torch.no_grad():
        return score_texts(reward_model.score, reward_model.tokenizer, prompts, responses, device,
                           reward_model.config.context_len).cpu()


def compare(cfg: EvalConfig) -> tuple[dict, list[tuple[str, str, str]]]:
    """SFT and the policy answer the same held-out prompts; the gold judge decides."""
    cfg.validate()
    device = pick_device(cfg.device)
    with autocast(device, cfg.precision):
        return judged_comparison(cfg.with_policy_defaults(), device)


def judged_comparison(cfg: EvalConfig, device) -> tuple[dict, list[tuple[str, str, str]]]:
    from rlhf_lab.reward import load_reward_model

    check_exists(cfg, "policy")
    # the policy first: a reward model given as --policy would otherwise be reported as a missing --rm,
    # the default its config leaves (with_policy_defaults)
    policy = load_model(cfg.policy, device).eval()
    check_exists(cfg, "sft", *(("rm",) if cfg.rm else ()))
    world = World(WorldConfig(seed=cfg.world_seed))
    per_prompt = cfg.answers_per_prompt()
    prompts = [p for p in world.prompts(cfg.split)[:cfg.prompts] for _ in range(per_prompt)]
    sft = load_model(cfg.sft, device).eval()
    if sft.tokenizer != policy.tokenizer:     # the KL reads the policy's tokens under the reference
        raise ConfigError(f"--sft {cfg.sft} and --policy {cfg.policy} use different tokenizers: the KL between "
                          "them is not defined; compare a policy with the SFT model it started from")
    reward_model = load_reward_model(cfg.rm, device).eval() if cfg.rm else None
    sampling = SamplingConfig(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature)
    rollouts = {name: sample_rollouts(model, prompts, sampling, seed=cfg.seed)
                for name, model in (("sft", sft), ("policy", policy))}
    texts = {name: response_texts(rs) for name, rs in rollouts.items()}
    # an answer cut at --max-new-tokens before its EOS is judged malformed (World.judge)
    verdicts = {name: judge_all(world, prompts, texts[name], ended_flags(rs))
                for name, rs in rollouts.items()}
    wins, se = win_rate(prompts, verdicts["policy"], verdicts["sft"])
    metrics = {"gold_win_rate_vs_sft": wins, "gold_win_rate_se": se, "temperature": cfg.temperature,
               "prompts": len(prompts) // per_prompt, "comparisons": len(prompts), "split": cfg.split}
    if cfg.temperature == 1:   # KL(π‖π_ref) is an expectation under π itself; tempered samples do not estimate it
        metrics["kl_to_ref"], metrics["kl_to_ref_se"] = kl_per_response(policy, sft, rollouts["policy"])
    for name, responses in texts.items():
        judged = summarize(verdicts[name])
        proxy = {} if reward_model is None else \
            {f"proxy_mean_{name}": proxy_scores(reward_model, prompts, responses, device).mean().item()}
        metrics.update({f"gold_mean_{name}": judged["gold_mean"], **proxy, f"mean_len_{name}": mean_bytes(responses),
                        f"well_formed_rate_{name}": judged["well_formed_rate"],
                        f"style_mix_{name}": judged["style_mix"], f"slip_rate_{name}": judged["slip_rate"]})
    metrics["by_family"] = by_family(world, prompts, verdicts["policy"], verdicts["sft"])
    first = range(0, len(prompts), per_prompt)                               # each prompt's first answers
    return metrics, [(prompts[i], *((texts[n][i], verdicts[n][i].score) for n in ("sft", "policy")))
                     for i in first[:cfg.shown]]


def markdown_report(metrics: dict, samples: list) -> str:
    """The comparison as markdown: headline figures, style mix, and samples side by side
    (samples: (prompt, (SFT answer, gold), (policy answer, gold)) rows)."""
    def cell(text):
        return text.replace("|", "\\|").replace("\n", "⏎")

    sampled = "greedy" if metrics["temperature"] == 0 else f"sampled at temperature {metrics['temperature']:g}"
    per_prompt = metrics["comparisons"] // metrics["prompts"]
    lines = ["# SFT versus the RLHF policy", "",
             f"{metrics['prompts']} {'training' if metrics['split'] == 'train' else 'held-out'} prompts "
             f"({metrics['split']}), {per_prompt} answer{'s' * (per_prompt > 1)} to each from each model "
             f"({sampled}): {metrics['comparisons']} comparisons of one answer against one, judged by the gold judge.",
             "", "| figure | SFT | policy |", "|---|---|---|"]
    for key in [k for k in ("gold_mean", "proxy_mean", "mean_len", "well_formed_rate") if k + "_sft" in metrics]:
        lines.append(f"| {key} | {metrics[key + '_sft']:.3f} | {metrics[key + '_policy']:.3f} |")
    for style in STYLES:
        lines.append(f"| share {style} | {metrics['style_mix_sft'][style]:.3f} | {metrics['style_mix_policy'][style]:.3f} |")
    lines.append(f"| of which slips (wrong, naming no decoy) | {metrics['slip_rate_sft']:.3f} | "
                 f"{metrics['slip_rate_policy']:.3f} |")
    lines += ["", f"Gold win rate of the policy over SFT: **{metrics['gold_win_rate_vs_sft']:.3f}** "
              f"± {metrics['gold_win_rate_se']:.3f} (standard error; ties count half)."
              + (f" KL(policy ‖ SFT): **{metrics['kl_to_ref']:.2f} ± {metrics['kl_to_ref_se']:.2f} nats per "
                 "response**." if "kl_to_ref" in metrics
                 else ""), "",
              "| task family | comparisons | win rate | gold, SFT → policy | wrong, SFT → policy | "
              "slips, SFT → policy | unparseable, SFT → policy |", "|---|---|---|---|---|---|---|"]
    for family, f in metrics["by_family"].items():
        lines.append(f"| {family} | {f['comparisons']} | {f['gold_win_rate_vs_sft']:.3f} | "
                     + " | ".join(f"{f[key + '_sft']:.3f} → {f[key + '_policy']:.3f}"
                                  for key in ("gold_mean", "wrong", "slip", "unparseable")) + " |")
    lines += ["", "| prompt | SFT (gold) | policy (gold) |", "|---|---|---|"]
    for prompt, (a, gold_a), (b, gold_b) in samples:
        lines.append(f"| {cell(prompt)} | {cell(a)} ({gold_a:.2f}) | {cell(b)} ({gold_b:.2f}) |")
    return "\n".join(lines) + "\n"


def comparison_plot(metrics: dict, path: Path) -> None:
    """SFT beside the policy at a glance: the share of each style among their answers, and
    their mean gold score per task family."""
    plt = pyplot()
    families = list(metrics["by_family"])
    fig, (styles, gold) = plt.subplots(1, 2, figsize=(10, 3.8))
    for offset, name in ((-0.2, "sft"), (0.2, "policy")):
        styles.barh([i + offset for i in range(len(STYLES))], [metrics[f"style_mix_{name}"][s] for s in STYLES],
                    height=0.4, label="SFT" if name == "sft" else "RLHF policy")
        gold.barh([i + offset for i in range(len(families))],
                  [metrics["by_family"][f][f"gold_mean_{name}"] for f in families], height=0.4)
    styles.set_yticks(range(len(STYLES)), STYLES)
    styles.set_xlabel("share of answers")
    styles.legend(fontsize=8)
    gold.set_yticks(range(len(families)), families)
    gold.set_xlabel("mean gold score")
    gold.axvline(0, color="k", linewidth=0.5)
    styles.invert_yaxis()     # the first style (ideal) and family on top
    gold.invert_yaxis()
    fig.suptitle(f"SFT versus the RLHF policy: gold win rate {metrics['gold_win_rate_vs_sft']:.3f} "
                 f"± {metrics['gold_win_rate_se']:.3f} on {metrics['comparisons']} comparisons")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def main(cfg: EvalConfig) -> dict:
    cfg = cfg.with_policy_defaults()
    if not cfg.out and cfg.policy == SHIPPED:
        raise ConfigError("--policy shipped: give --out, or the report would go into the installed package")
    out = check_out(cfg.out or run_directory(cfg.policy) / "eval", "a directory")
    fresh_report_directory(out, "eval", cfg, ("config.json", "inputs.json", "metrics.json", "report.md",
                                              "comparison.png"))
    inputs = input_digests(cfg)          # the models' contents, read once: for the note and inputs.json
    for name in not_what_the_policy_read(cfg, inputs):
        status(f"note: --{name} {getattr(cfg, name)} is not the model the policy's run read (its inputs.json): "
               + ("win rate and KL are against another baseline" if name == "sft" else "the proxy is another's"))
    metrics, samples = compare(cfg)
    write_json(out / "metrics.json", metrics)
    write_text(out / "report.md", markdown_report(metrics, samples))
    comparison_plot(metrics, out / "comparison.png")
    # what the figures are of, last: a directory whose config and inputs match holds their figures
    write_json(out / "config.json", recorded_config("eval", cfg))
    write_json(out / "inputs.json", inputs)
    headline = {k: v for k, v in metrics.items() if k != "by_family"}       # the family table is in report.md
    status(table("SFT versus RLHF policy", headline) + f"\nreport: {out / 'report.md'}, plot: {out / 'comparison.png'}")
    return metrics
