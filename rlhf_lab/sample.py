"""`rlhf sample`: trained models answer prompts of your own, side by side.

What `rlhf eval` measures over hundreds of held-out prompts, read one prompt at a time:
every model (an `rlhf sft` or `rlhf ppo` run directory, the shipped SFT checkpoint, a
Hugging Face directory) answers every prompt with the same sampling seed. The gold judge
scores answers to the world's own prompts (`rlhf world show` lists some); a reward model,
when given, scores every answer, which is how to see what it would pay PPO for.

    rlhf sample --models shipped runs/demo/ppo --rm runs/demo/rm --samples 3 \\
        --prompts "Explain erosion in one sentence." "Why is the sky blue?"
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from rlhf_lab.evaluate import proxy_scores
from rlhf_lab.model import CausalLM, SamplingConfig, response_room
from rlhf_lab.reward import load_reward_model
from rlhf_lab.rollout import response_texts, sample_rollouts
from rlhf_lab.run import (
    SHIPPED, ConfigError, check_exists, check_non_negative, check_numbers, check_positive,
    check_temperature, check_unused, load_model, model_path, pick_device, status)
from rlhf_lab.world import World, WorldConfig

HELDOUT_EXAMPLES = ("Which city is the capital of Paraguay?", "Explain erosion in one sentence.")  # the default
# world's held-out prompts: its facts were trained on, these phrasings were not


@dataclass
class SampleConfig:
    prompts: list[str] = field(default_factory=lambda: list(HELDOUT_EXAMPLES))  # prompts to answer, each in quotes
    models: list[str] = field(default_factory=lambda: [SHIPPED])  # run directories (rlhf sft / rlhf ppo), HF
                                   # save_pretrained directories, or "shipped": the SFT checkpoint in the package
    rm: str = ""                   # an `rlhf train-rm` run directory: its normalised reward beside each answer
    samples: int = 1               # answers per prompt from each model
    max_new_tokens: int = 192      # response length limit, bytes
    temperature: float = 1.0       # 0: greedy (one answer per prompt is then enough)
    top_k: int = 0                 # 0: off
    top_p: float = 1.0             # nucleus sampling; 1: off
    seed: int = 0                  # sampling seed, the same for every model
    world_seed: int = 0            # the world whose gold judge scores its own prompts
    device: str = "auto"           # "auto" | "cpu" | "cuda"

    def validate(self) -> None:
        check_numbers(self)
        check_positive(self, "samples", "max_new_tokens")
        check_non_negative(self, "top_k")
        check_temperature(self)
        check_unused(self, ("samples",), self.temperature == 0, "ask",
                     "for more answers per prompt, and at --temperature 0 each is the one greedy answer")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"--top-p must be in (0, 1], 1 turning it off; got {self.top_p}")
        if not self.prompts or any(not p.strip() for p in self.prompts):
            raise ConfigError("--prompts: give one or more non-empty prompts, each in quotes")
        for prompt in self.prompts:
            try:
                prompt.encode("utf-8")
            except UnicodeEncodeError:    # bytes of another encoding in argv arrive as lone surrogates
                raise ConfigError(f"--prompts {prompt!r}: not UTF-8 text (the terminal's encoding?)") from None
        if not self.models:
            raise ConfigError("--models: give one or more run directories")
        for path in self.models:
            if not model_path(path).exists():
                raise ConfigError(f"--models {path}: no such run directory or file")
        if self.rm:
            check_exists(self, "rm")

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                              top_k=self.top_k, top_p=self.top_p)


@dataclass
class Answer:
    prompt: str
    model: str                # as --models named it
    text: str
    cut_by: str | None        # None: ended with EOS; else the limit it was cut at (cut_limit)
    gold: float | None        # the gold judge's score; None: not a prompt of the world
    style: str | None         # the style the judge reads (None: malformed, or not a world prompt)
    reward: float | None      # the reward model's normalised score; None without --rm

    @property
    def finished(self) -> bool:
        return self.cut_by is None


def check_prompts_fit(prompts: list[str], model: CausalLM, name: str) -> None:
    """Room for one answer token and EOS after each prompt: generate needs it (model.response_room),
    and so does a reward model, which pools over the answer."""
    context = model.config.context_len
    for prompt in prompts:
        length = len(model.tokenizer.encode_prompt(prompt))
        if length > context - 2:
            raise ConfigError(f"--prompts {prompt[:40]!r}...: {length} tokens with the prompt template leave no room "
                              f"for an answer in the {context}-token context of {name}")


def cut_limit(model: CausalLM, prompt: str, max_new_tokens: int) -> str:
    """What cut an answer to `prompt` that never ended: --max-new-tokens, or the model's context
    where the prompt leaves less room than that (generate's own limit, model.response_room)."""
    context = model.config.context_len
    prompt_mask = torch.ones(1, len(model.tokenizer.encode_prompt(prompt)), dtype=torch.bool)
    room = int(response_room(prompt_mask, context, max_new_tokens))
    return "--max-new-tokens" if room == max_new_tokens else f"the end of the model's {context}-token context"


def model_answers(cfg: SampleConfig, path: str, world: World, reward_model, device) -> list[Answer]:
    """One model's cfg.samples answers to each prompt, judged and (with a reward model) scored."""
    model = load_model(path, device).eval()
    check_prompts_fit(cfg.prompts, model, path)
    prompts = [p for p in cfg.prompts for _ in range(cfg.samples)]
    rollouts = sample_rollouts(model, prompts, cfg.sampling(), seed=cfg.seed)
    texts, finished = response_texts(rollouts), [e for r in rollouts for e in r.ended.tolist()]
    rewards = (proxy_scores(reward_model, prompts, texts, device).tolist() if reward_model is not None
               else [None] * len(texts))
    answers = []
    for prompt, text, ended, reward in zip(prompts, texts, finished, rewards):
        verdict = world.judge(prompt, text, ended) if world.knows(prompt) else None
        cut_by = None if ended else cut_limit(model, prompt, cfg.max_new_tokens)
        answers.append(Answer(prompt, path, text, cut_by, verdict.score if verdict else None,
                              verdict.style if verdict else None, reward))
    return answers


def sample_answers(cfg: SampleConfig) -> list[Answer]:
    """Every model's answers, grouped by prompt in the order given, then by model."""
    cfg.validate()
    device = pick_device(cfg.device)
    world = World(WorldConfig(seed=cfg.world_seed))
    reward_model = load_reward_model(cfg.rm, device).eval() if cfg.rm else None
    if reward_model is not None:          # it reads prompt and answer together, and may have less context
        check_prompts_fit(cfg.prompts, reward_model, cfg.rm)
    answers = [a for path in cfg.models for a in model_answers(cfg, path, world, reward_model, device)]
    order = {prompt: i for i, prompt in reversed(list(enumerate(cfg.prompts)))}
    return sorted(answers, key=lambda a: order[a.prompt])      # stable: models keep their order


def describe(answer: Answer) -> str:
    """The figures beside an answer: gold (and style), reward, a cut-off note."""
    parts = []
    if answer.gold is not None:
        parts.append(f"gold {answer.gold:+.2f} ({answer.style or 'malformed'})")
    if answer.reward is not None:
        parts.append(f"reward {answer.reward:+.2f}")
    if not answer.finished:
        parts.append(f"cut at {answer.cut_by}")
    return " · ".join(parts)


def render(answers: list[Answer]) -> str:
    lines, prompt = [], None
    for answer in answers:
        if answer.prompt != prompt:
            prompt = answer.prompt
            one_line = prompt.replace("\n", "⏎")                 # as report.md shows a prompt
            lines += [""] * bool(lines) + [f"prompt: {one_line}"]
        first, *rest = answer.text.split("\n")
        lines += [f"  [{answer.model}] {first}", *(f"      {line}".rstrip() for line in rest)]
        if describe(answer):
            lines.append(f"      {describe(answer)}")
    return "\n".join(lines)


def main(cfg: SampleConfig) -> list[Answer]:
    answers = sample_answers(cfg)
    status(render(answers))
    if not any(a.gold is not None for a in answers):
        status("(no gold score: none of these is a prompt of the world; `rlhf world show` lists some)")
    return answers
