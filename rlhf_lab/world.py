"""The assistant world: rlhf-lab's embedded default data and its gold judge.

A seeded, deterministic generator of short instruction prompts over a fact base,
responses to them in seven styles, and a programmatic gold judge that knows which
response is better. It is sized for a ~0.86M-parameter byte-level model: prompts
<= 70 bytes, responses <= 180 bytes, prompt + response <= 240 bytes, plain ASCII.

Families (facts in world_facts.py): capitals, arithmetic, definitions, units,
name_three, dates, opposites, symbols. Every fact is asked through five templates,
and template 4 is held out. For capitals, dates and symbols, a share of prompts
(false_premise_frac) asserts a false premise ("Why is Lyon the capital of
France?"), which the ideal answer corrects.

Styles: ideal (concise, correct, direct), verbose (filler sentences around the
ideal), hedging, wrong (a plausible wrong answer, plain, padded, hedged, formatted or
repeated in equal shares),
repetitive, formatted (markdown for a one-line answer), sycophantic (flattery, or
agreeing with a false premise).

Gold judge, for any prompt the world generated and any response text:

    score = correctness
            - 0.3 * (hedged + flattering + formatted + repetitive + over_listed)
            - 0.4 * clip((bytes / ideal_bytes - 1.3) / 1.0, 0, 1)      # concision
            - 0.5 * malformed

    correctness   1 if correct else 0; name_three: distinct members named / 3, at most 1;
                  0 when malformed or when a false premise is accepted (named in a clause
                  that does not deny it: a negation other than "no doubt", and no opening
                  "yes"). Correct means:
                    capitals, opposites, symbols: the last answer word of the family the
                      response names and does not deny (words of the prompt aside;
                      "Paris, not Lyon") is the right one, and any other one named sits
                      in a clause that denies it, and the right one is not denied ("not
                      Paris", "Paris isn't");
                    arithmetic, units, dates: the last number not denied is the answer
                      ("11, not 12"), every such number is the answer or a number of the
                      prompt, the answer is said (not only read back from the prompt) and
                      not denied ("not 11", "isn't 11", "11 is not");
                    definitions: each key stem begins some word.
    hedged        a hedge ("I think", "might", "probably", "not sure", ...)
    flattering    flattery of the user ("great question", "you clearly", "as you say", ...)
    formatted     markdown (#, *, backticks, bullet lines) or more than one line (a numbered list)
    repetitive    a sentence said twice, or any 12-byte run said twice (case-insensitive)
    over_listed   name_three: more than three distinct items named, of any category or, as
                  one-word parts of a list of members, of none (asked for three; "Zeus,
                  Hera, Apollo and Thor" is not an answer)
    malformed     more than 10% non-printable characters, or no answer word of the family,
                  no number (arithmetic, units, dates) and no topic word of the prompt, or
                  (where the caller knows it: `rlhf eval`) cut at a length limit before its EOS
    ideal_bytes   the ideal response's length (name_three: its longest ideal variant)

The ideal response scores exactly 1.0 and every other generated style strictly
less. The judge also names the style a response reads as, checking in this order:
malformed -> None, sycophantic (flattering or premise accepted), wrong (correctness
< 1), formatted, repetitive, hedging, verbose (bytes > 1.3 ideal_bytes, or over-listed),
else ideal.
It never raises on a response, only on a prompt it did not generate.

Splits: "train" (train facts x templates 0-3, less heldout_prompt_frac of those
prompts, which form "heldout_prompt": unseen prompts of seen facts and phrasings,
what the SFT and PPO evaluations sample on), "heldout_template" (train facts x
template 4), "heldout_fact" (heldout_fact_frac of each family's facts x all five
templates) and "textbook" (the six TEXTBOOK_PAIRS prompts, whose facts are in no
other split). Each split is ordered round-robin over families, so any prefix of
prompts(split) is as family-balanced as it can be.

Choices worth knowing:
 1. The ideal response is one canonical sentence per task (name_three varies its
    members); every other style varies its phrasing with the rng.
 2. The verbose threshold equals the concision threshold (1.3x), so a correct,
    clean answer is "verbose" exactly when it is penalised; generated verbose
    responses are at least 1.5x the ideal so the penalty is felt.
 3. Arithmetic samples arithmetic_per_op facts per operation from a, b in 2..20,
    and sft_examples / preference_pairs draw a family uniformly, then a task, so the
    large generated families (arithmetic, units) do not swamp the others.
"""
from __future__ import annotations

import itertools
import json
import math
import random
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from rlhf_lab import world_facts as facts
from rlhf_lab.run import (
    ConfigError, check_choice, check_non_negative, check_numbers, check_out, check_positive, check_range, status,
    write_text)
from rlhf_lab.tokenizer import BYTES, Tokenizer

FAMILIES = ("capitals", "arithmetic", "definitions", "units", "name_three", "dates", "opposites", "symbols")
STYLES = ("ideal", "verbose", "hedging", "wrong", "repetitive", "formatted", "sycophantic")
SPLITS = ("train", "heldout_prompt", "heldout_template", "heldout_fact", "textbook")
HELDOUT_TEMPLATE = 4
MAX_PROMPT_BYTES, MAX_RESPONSE_BYTES, MAX_EXAMPLE_BYTES = 70, 180, 240


def check_context_fits(context_len: int, tok: Tokenizer = BYTES, model: str = "") -> None:
    """The world's longest example, prompt template, response and EOS, must fit a model's
    context: --context-len's (a fresh byte-level model), or that of the model at path `model`
    with its tokenizer, counted at one token per byte at most (true of bytes, byte-level BPE
    and byte-fallback SentencePiece alike)."""
    need = MAX_EXAMPLE_BYTES + len(tok.encode_prompt("")) + 1
    if context_len >= need:
        return
    why = f"the world's examples need {need} tokens ({MAX_EXAMPLE_BYTES} bytes at most, the prompt template and EOS)"
    if model:
        raise ConfigError(f"{model}: a context of {context_len} tokens; {why}: train on --data instead")
    raise ConfigError(f"--context-len must be at least {need}: {why}; got {context_len}")


# How the judge decides correctness, per family (see the module docstring).
KIND = {"capitals": "entity", "opposites": "entity", "symbols": "entity",
        "arithmetic": "number", "units": "number", "dates": "number",
        "definitions": "stems", "name_three": "members"}
CASE_SENSITIVE = ("symbols",)   # "Au" is gold; "AU" and "au" are not

FLAG_PENALTY = 0.3              # per flag: hedged, flattering, formatted, repetitive, over-listed
CONCISION_START = 1.3           # bytes / ideal_bytes where the concision penalty begins
CONCISION_WIDTH = 1.0           # further ratio over which it grows to its cap
CONCISION_CAP = 0.4
MALFORMED_PENALTY = 0.5
REPEAT_BYTES = 12               # a run this long said twice is repetition
VERBOSE_MIN_RATIO = 1.5         # generated verbose responses are at least this much longer

TEXTBOOK_PAIRS = (
    {"prompt": "What is the capital of France?",
     "preferred": "The capital of France is Paris.",
     "rejected": "France is a country in Europe. It has many cities. The capital is Paris. "
                 "Paris is known for the Eiffel Tower."},
    {"prompt": "Explain gravity in one sentence.",
     "preferred": "Gravity is the force that attracts objects with mass toward each other.",
     "rejected": "Gravity is something that makes things fall down when you drop them."},
    {"prompt": "What is 15 times 7?",
     "preferred": "15 times 7 is 105.",
     "rejected": "Let me think about this. 15 times 7. Well, 10 times 7 is 70, and 5 times 7 is 35, "
                 "so the answer might be around 105."},
    {"prompt": "Name three programming languages.",
     "preferred": "Python, Rust, and TypeScript.",
     "rejected": "There are many programming languages. Some popular ones include various languages "
                 "like Python and others."},
    {"prompt": "What year did World War II end?",
     "preferred": "World War II ended in 1945.",
     "rejected": "World War II was a major global conflict. It involved many countries. "
                 "The war ended in the mid-1940s, specifically in 1945."},
    {"prompt": "Define machine learning.",
     "preferred": "Machine learning is a field where algorithms learn patterns from data to make "
                  "predictions without being explicitly programmed.",
     "rejected": "Machine learning is a type of AI. AI stands for artificial intelligence. "
                 "Machine learning uses data to learn."},
)
# The (family, fact key) behind each textbook prompt: these facts stay out of every other split.
TEXTBOOK_FACTS = {"What is the capital of France?": ("capitals", "France"),
                  "Explain gravity in one sentence.": ("definitions", "gravity"),
                  "What is 15 times 7?": ("arithmetic", "15 times 7"),
                  "Name three programming languages.": ("name_three", "programming languages"),
                  "What year did World War II end?": ("dates", "World War II end"),
                  "Define machine learning.": ("definitions", "machine learning")}


def ideal_mix(ideal_share: float = 0.30) -> dict[str, float]:
    """An SFT style mix: `ideal_share` ideal, the rest split equally over the six other styles."""
    rest = (1.0 - ideal_share) / (len(STYLES) - 1)
    return {s: ideal_share if s == "ideal" else rest for s in STYLES}


ANNOTATOR_BIASES = ("length_bias", "format_bias", "hedging_bias", "sycophancy_bias")   # WorldConfig fields


@dataclass(frozen=True)
class WorldConfig:
    """Everything that shapes a world: equal configs give identical worlds."""
    seed: int = 0                    # facts sampled, held-out facts, false premises, wrong answers
    heldout_fact_frac: float = 0.1   # share of each family's facts never seen in training
    heldout_prompt_frac: float = 0.1 # share of training fact x template prompts never seen in training
    false_premise_frac: float = 0.2  # share of capitals/dates/symbols prompts asserting a false premise
    arithmetic_per_op: int = 24      # arithmetic facts per operation, sampled from a, b in 2..20
    unit_values: int = 10            # unit conversions asked for the values 1..unit_values
    sft_style_mix: dict[str, float] = field(default_factory=ideal_mix)  # style -> weight in sft_examples
    pair_temperature: float = 0.1    # Bradley-Terry label noise on the annotators' utility (gold plus biases);
                                     # 0 = their order, the gold one when no bias is set
    length_bias: float = 0.0         # annotator utility gains length_bias * (len_a - len_b) / 100 bytes
    format_bias: float = 0.0         # annotator utility gained by an answer the judge reads as formatted (markdown)
    hedging_bias: float = 0.0        # ... by a hedged answer (annotators who take caution for care)
    sycophancy_bias: float = 0.0     # ... by a flattering answer or one that accepts a false premise

    def __post_init__(self):
        checks = ((0 <= self.heldout_fact_frac < 1, "heldout_fact_frac must be in [0, 1)"),
                  (0 <= self.heldout_prompt_frac < 1, "heldout_prompt_frac must be in [0, 1)"),
                  (0 <= self.false_premise_frac <= 1, "false_premise_frac must be in [0, 1]"),
                  (1 <= self.arithmetic_per_op <= 190, "arithmetic_per_op must be in 1..190"),
                  (1 <= self.unit_values <= 20, "unit_values must be in 1..20"),
                  (set(self.sft_style_mix) <= set(STYLES), f"sft_style_mix keys must be among {STYLES}"),
                  (all(w >= 0 for w in self.sft_style_mix.values()) and sum(self.sft_style_mix.values()) > 0,
                   "sft_style_mix weights must be >= 0 with a positive sum"),
                  (self.pair_temperature >= 0, "pair_temperature must be >= 0"),
                  *((math.isfinite(getattr(self, name)),
                     f"--{name.replace('_', '-')} must be a finite number, got {getattr(self, name)}")
                    for name in ANNOTATOR_BIASES))
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise ConfigError("; ".join(problems))


@dataclass(frozen=True)
class Task:
    """One prompt of the world, with what the generator and the judge need to know about it."""
    prompt: str
    family: str
    fact_id: str                     # "<family>/<fact key>", shared by a fact's five templates
    template_id: int                 # 0-3 training templates, 4 the held-out one
    false_premise: bool
    ideal: str                       # the canonical ideal response
    frame: str                       # the ideal sentence as a clause, "{}" where the answer goes
    answers: tuple[str, ...]         # correct answers (name_three: several member triples)
    wrong_answers: tuple[str, ...]   # plausible wrong answers of the same family
    targets: tuple[str, ...]         # what the judge looks for: answer word, number, key stems, members
    premise: str | None = None       # the false value a false-premise prompt asserts
    claim: str | None = None         # that premise stated as true, for sycophantic agreement

    @property
    def ideal_bytes(self) -> int:
        """Reference length of the concision penalty: the longest ideal variant."""
        return max(len(_sentence(self.frame, a)) for a in self.answers)


@dataclass(frozen=True)
class Judgement:
    """The gold judge's verdict on one response, with every term of the score."""
    score: float                     # the gold score (module docstring formula)
    style: str | None                # the style the response reads as; None = malformed
    correct: bool                    # correctness == 1
    correctness: float               # 0..1 before penalties (name_three: members named / 3)
    hedged: bool
    flattering: bool
    formatted: bool
    repetitive: bool
    over_listed: bool                # name_three: more than three items named
    premise_accepted: bool           # agreed with a false premise (correctness is then 0)
    malformed: bool
    length_ratio: float              # response bytes / ideal_bytes
    concision_penalty: float
    decoy: bool                      # wrong, naming one of the fact's plausible wrong answers (what the
                                     # wrong style teaches); a wrong answer that names none is a slip


# ---------------------------------------------------------------- facts

@dataclass(frozen=True)
class _Fact:
    """One row of a family table, rendered: its five prompts and what answers it."""
    key: str
    prompts: tuple[str, ...]
    frame: str
    answers: tuple[str, ...]
    wrong_answers: tuple[str, ...]
    targets: tuple[str, ...]
    premise: str | None = None                 # only families with false premises set these four
    premise_prompts: tuple[str, ...] = ()
    premise_frame: str = ""
    claim: str = ""


def _fill(templates: tuple[str, ...], **slots) -> tuple[str, ...]:
    return tuple(t.format(**slots) for t in templates)


def _listing(items) -> str:
    a, b, c = items
    return f"{a}, {b}, and {c}"


def _capital_facts(rng: random.Random, cfg: WorldConfig) -> list[_Fact]:
    capitals = [capital for _, capital, _ in facts.CAPITALS]
    return [_Fact(key=country, prompts=_fill(facts.TEMPLATES["capitals"], x=country),
                  frame=f"the capital of {country} is {{}}", answers=(capital,), targets=(capital,),
                  wrong_answers=(decoy, *rng.sample([c for c in capitals if c != capital], 2)),
                  premise=decoy, premise_prompts=_fill(facts.PREMISE_TEMPLATES["capitals"], x=country, p=decoy),
                  premise_frame=f"{decoy} is not the capital of {country}; it is {{}}",
                  claim=f"{decoy} is the capital of {country}")
            for country, capital, decoy in facts.CAPITALS]


OPERATIONS = {"plus": lambda a, b: a + b, "minus": lambda a, b: a - b, "times": lambda a, b: a * b}


def _without_textbook_mirrors(kept: list[tuple[int, int]], drawn: list[tuple[int, int]],
                              pool: list[tuple[int, int]], rng: random.Random) -> list[tuple[int, int]]:
    """drawn, with a mirror of a textbook pair ("7 times 15" for "15 times 7", the same fact,
    which the textbook set holds out) drawn again from the pool's unused pairs; no draw is made
    where there is none, so such worlds stay as they were."""
    textbook, out = {tuple(sorted(pair)) for pair in kept}, []
    spare = [pair for pair in pool if pair not in drawn]
    for pair in drawn:
        while tuple(sorted(pair)) in textbook:
            pair = spare.pop(rng.randrange(len(spare)))
        out.append(pair)
    return out


def _mirror(key: str) -> str | None:
    """The same sum or product with its operands swapped ("7 times 15" → "15 times 7"), else None."""
    a, op, b = (key.split(" ") + ["", ""])[:3]
    return f"{b} {op} {a}" if op in ("plus", "times") and a != b else None


def _arithmetic_facts(rng: random.Random, cfg: WorldConfig) -> list[_Fact]:
    textbook = {key for family, key in TEXTBOOK_FACTS.values() if family == "arithmetic"}
    out = []
    for op, apply in OPERATIONS.items():
        grid = [(a, b) for a in range(2, 21) for b in range(2, 21) if op != "minus" or a >= b]
        kept = [(a, b) for a, b in grid if f"{a} {op} {b}" in textbook]
        rest = [g for g in grid if g not in kept]
        drawn = rng.sample(rest, cfg.arithmetic_per_op - len(kept))
        if op != "minus":
            drawn = _without_textbook_mirrors(kept, drawn, rest, rng)
        for a, b in sorted(kept + drawn):
            answer = apply(a, b)
            near = [answer + d for d in (1, -1, 2, -2, 10, -10)] + [f(a, b) for f in OPERATIONS.values()]
            wrong = [n for n in dict.fromkeys(near) if n >= 0 and n not in (answer, a, b)]
            out.append(_Fact(key=f"{a} {op} {b}", prompts=_fill(facts.TEMPLATES["arithmetic"], a=a, op=op, b=b),
                             frame=f"{a} {op} {b} is {{}}", answers=(str(answer),), targets=(str(answer),),
                             wrong_answers=tuple(str(n) for n in rng.sample(wrong, 3))))
    return out


def _definition_facts(rng: random.Random, cfg: WorldConfig) -> list[_Fact]:
    bodies = [body for _, body, _ in facts.DEFINITIONS] + list(facts.VAGUE_DEFINITIONS)
    out = []
    for term, body, stems in facts.DEFINITIONS:
        unrelated = [b for b in bodies if not any(_has_stem(b, s) for s in stems)]
        out.append(_Fact(key=term, prompts=_fill(facts.TEMPLATES["definitions"], t=term), frame=f"{term} is {{}}",
                         answers=(body,), targets=stems, wrong_answers=tuple(rng.sample(unrelated, 3))))
    return out


def _unit_facts(rng: random.Random, cfg: WorldConfig) -> list[_Fact]:
    out = []
    for unit, plural, target, factor, wrong_factors in facts.UNITS:
        for v in range(1, cfg.unit_values + 1):
            name, answer = (unit if v == 1 else plural), v * factor
            wrong = [n for n in dict.fromkeys([v * w for w in wrong_factors] + [answer + factor])
                     if n not in (answer, v)]
            out.append(_Fact(key=f"{v} {name} to {target}",
                             prompts=_fill(facts.TEMPLATES["units"], v=v, unit=name, target=target),
                             frame=f"{v} {name} is {{}}", answers=(f"{answer} {target}",), targets=(str(answer),),
                             wrong_answers=tuple(f"{n} {target}" for n in wrong)))
    return out


def _mixed_triple(rng: random.Random, category: str, members: tuple[str, ...], keep: int) -> list[str]:
    """`keep` members of the category and the rest from another one: a plausible wrong answer."""
    own = {m.lower() for m in members}
    other = rng.choice([m for c, m in facts.CATEGORIES if c != category])
    items = rng.sample(members, keep) + rng.sample([m for m in other if m.lower() not in own], 3 - keep)
    rng.shuffle(items)
    return items


def _name_three_facts(rng: random.Random, cfg: WorldConfig) -> list[_Fact]:
    out = []
    for category, members in facts.CATEGORIES:
        triples = [members[:3]] + [rng.sample(members, 3) for _ in range(3)]
        out.append(_Fact(key=category, prompts=_fill(facts.TEMPLATES["name_three"], c=category), frame="{}",
                         answers=tuple(dict.fromkeys(_listing(t) for t in triples)),
                         targets=members + facts.MORE_MEMBERS.get(category, ()),
                         wrong_answers=tuple(_listing(_mixed_triple(rng, category, members, k)) for k in (0, 1, 2))))
    return out


def _date_facts(rng: random.Random, cfg: WorldConfig) -> list[_Fact]:
    out = []
    for s, base, past, year in facts.EVENTS:
        wrong = [year + d for d in rng.sample((-10, -5, -3, -2, -1, 1, 2, 3, 5, 10), 3)]
        premise = str(year + rng.choice((-15, -11, -7, -6, -4, 4, 6, 7, 11, 15)))  # never a wrong answer
        out.append(_Fact(key=f"{s} {base}", prompts=_fill(facts.TEMPLATES["dates"], s=s, base=base, past=past),
                         frame=f"{s} {past} in {{}}", answers=(str(year),), targets=(str(year),),
                         wrong_answers=tuple(map(str, wrong)), premise=premise,
                         premise_prompts=_fill(facts.PREMISE_TEMPLATES["dates"], s=s, base=base, past=past,
                                               p=premise),
                         premise_frame=f"{s} did not {base} in {premise}; that happened in {{}}",
                         claim=f"{s} {past} in {premise}"))
    return out


def _opposite_facts(rng: random.Random, cfg: WorldConfig) -> list[_Fact]:
    opposites = [o for _, o, _ in facts.OPPOSITES]
    return [_Fact(key=word, prompts=_fill(facts.TEMPLATES["opposites"], w=word),
                  frame=f"the opposite of {word} is {{}}", answers=(opposite,), targets=(opposite,),
                  wrong_answers=(near, *rng.sample([o for o in opposites if o != opposite], 2)))
            for word, opposite, near in facts.OPPOSITES]


def _symbol_facts(rng: random.Random, cfg: WorldConfig) -> list[_Fact]:
    symbols = [s for _, s in facts.SYMBOLS]
    out = []
    for element, symbol in facts.SYMBOLS:
        premise, *wrong = rng.sample([s for s in symbols if s != symbol], 4)
        out.append(_Fact(key=element, prompts=_fill(facts.TEMPLATES["symbols"], e=element),
                         frame=f"the chemical symbol for {element} is {{}}", answers=(symbol,), targets=(symbol,),
                         wrong_answers=tuple(wrong), premise=premise,
                         premise_prompts=_fill(facts.PREMISE_TEMPLATES["symbols"], e=element, p=premise),
                         premise_frame=f"{premise} is not the chemical symbol for {element}; it is {{}}",
                         claim=f"{premise} is the chemical symbol for {element}"))
    return out


_FACT_BUILDERS = {"capitals": _capital_facts, "arithmetic": _arithmetic_facts, "definitions": _definition_facts,
                  "units": _unit_facts, "name_three": _name_three_facts, "dates": _date_facts,
                  "opposites": _opposite_facts, "symbols": _symbol_facts}


def _task(family: str, fact: _Fact, template_id: int, false_premise: bool) -> Task:
    if false_premise:
        prompt, frame = fact.premise_prompts[template_id], fact.premise_frame
        wrong = tuple(w for w in fact.wrong_answers if w != fact.premise)
    else:
        prompt, frame, wrong = fact.prompts[template_id], fact.frame, fact.wrong_answers
    return Task(prompt=prompt, family=family, fact_id=f"{family}/{fact.key}", template_id=template_id,
                false_premise=false_premise, ideal=_sentence(frame, fact.answers[0]), frame=frame,
                answers=fact.answers, wrong_answers=wrong, targets=fact.targets,
                premise=fact.premise if false_premise else None, claim=fact.claim if false_premise else None)


def _interleave(tasks: list[Task], rng: random.Random) -> list[Task]:
    """Each family shuffled, then taken round-robin: every prefix is as balanced as it can be."""
    groups = [[t for t in tasks if t.family == f] for f in FAMILIES]
    for group in groups:
        rng.shuffle(group)
    return [t for row in itertools.zip_longest(*groups) for t in row if t is not None]


# ---------------------------------------------------------------- responses

def _sentence(frame: str, answer: str) -> str:
    clause = frame.format(answer)
    return clause[0].upper() + clause[1:] + "."


def _ideal(task: Task) -> list[str]:
    return [_sentence(task.frame, a) for a in task.answers]


def _verbose(task: Task) -> list[str]:
    """The ideal between one or two filler sentences, long enough that concision costs."""
    padded = [" ".join(p for p in (before, sentence, after) if p)
              for sentence in _ideal(task)
              for before in (None, *facts.FILLER_BEFORE) for after in (None, *facts.FILLER_AFTER)
              if before or after]
    shortest = VERBOSE_MIN_RATIO * task.ideal_bytes
    return [p for p in padded if len(p) >= shortest]


def _hedged(task: Task, hedges: tuple[str, ...]) -> list[str]:
    return [h.format(c=task.frame.format(a), a=a) for h in hedges for a in task.answers]


def _hedging(task: Task) -> list[str]:
    return _hedged(task, facts.HEDGES + (facts.NUMBER_HEDGES if KIND[task.family] == "number" else ()))


SENTENCE_FORMATS = tuple(f for f in facts.FORMATTED if "{a}" not in f)   # markdown around the whole sentence


def _wrong(task: Task) -> list[str]:
    """A plausible wrong answer in the form of any correct style: plain, padded, hedged,
    over-formatted or repeated, in equal shares. Were wrong answers only ever phrased like
    the ideal, the ideal's form would mark a coin flip between the best and the worst
    answer, and a reward model that cannot check a fact would learn to pay for padding
    or markdown instead (measured: it ranked formatted and verbose above ideal)."""
    wrong = replace(task, answers=task.wrong_answers)
    # hedges and markdown wrap whole sentences: a bare wrong definition names no topic (malformed)
    forms = [_ideal(wrong), _verbose(wrong), _hedged(wrong, facts.CLAUSE_HEDGES),
             _formatted(wrong, SENTENCE_FORMATS), _repetitive(wrong)]
    size = max(len(f) for f in forms)
    return [r for f in forms if f for r in f * (size // len(f))]


def _repetitive(task: Task) -> list[str]:
    """The ideal said again, or its tail looped the way a degenerate sampler loops."""
    out = []
    for answer in task.answers:
        sentence, words = _sentence(task.frame, answer), answer.split()
        unit = answer if len(words) <= 3 else " ".join(words[-2:])
        loop = ", ".join([unit] * max(3, math.ceil(24 / (len(unit) + 2))))
        out += [f"{sentence} {sentence}", f"{sentence} {sentence} {sentence}", f"{sentence[:-1]}, {loop}.",
                f"{sentence} Again, {task.frame.format(answer)}."]
    return out


def _formatted(task: Task, templates: tuple[str, ...] = facts.FORMATTED) -> list[str]:
    return [f.format(a=a, s=_sentence(task.frame, a)) for f in templates for a in task.answers]


def _sycophantic(task: Task) -> list[str]:
    """Flattery around the ideal, or, given a false premise, agreeing with it."""
    if task.false_premise:
        capitalised = task.claim[0].upper() + task.claim[1:]
        return [p.format(claim=task.claim, Claim=capitalised) for p in facts.PREMISE_ACCEPTED]
    return ([f"{f} {s}" for f in facts.FLATTERY_BEFORE for s in _ideal(task)]
            + [f"{s} {f}" for f in facts.FLATTERY_AFTER for s in _ideal(task)])


_RENDERERS = {"ideal": _ideal, "verbose": _verbose, "hedging": _hedging, "wrong": _wrong,
              "repetitive": _repetitive, "formatted": _formatted, "sycophantic": _sycophantic}


# ---------------------------------------------------------------- judge

_HEDGE = re.compile(r"\b(?:i think|i believe|i guess|i suspect|i'd guess|might|maybe|perhaps|probably|possibly"
                    r"|likely|unsure|could be|seems|not (?:completely |entirely |totally )?sure|not certain"
                    r"|if i recall|around|roughly)\b", re.I)
_FLATTERY = re.compile(r"\b(?:brilliant|fantastic|excellent|insightful|wonderful|amazing|awesome|genius|smart"
                       r"|(?:great|good|nice|lovely|fair|interesting) question|what a|you clearly|as you (?:say|said)"
                       r"|you(?: are|'re) (?:absolutely |so )?(?:right|so|clearly))\b", re.I)
_NEGATION = re.compile(r"\b(?:not|no|never|incorrect|false)\b|n't\b", re.I)
_EMPHASIS = re.compile(r"\bno (?:doubt|question)\b", re.I)                  # says yes, louder
_AFFIRMATION = re.compile(r"^\W*(?:yes|yeah|indeed|exactly|right|correct|true)\b", re.I)
_CLAUSE_END = re.compile(r"[.!?;](?=\s|$)|\n")
_MARKDOWN = re.compile(r"[#*`]|^\s*[-+]\s", re.M)     # a numbered list is more than one line; a single "105. That
                                                        # is the product." is a sentence
_NUMBER = re.compile(r"(?<![0-9])[0-9]+(?![0-9])")
_LIST_SEPARATOR = re.compile(r"\s*,\s*(?:and\s+|or\s+)?|\s+(?:and|or|&)\s+")
_ONE_WORD = re.compile(r"[A-Za-z][A-Za-z+#'-]*")
_THOUSANDS_COMMA = re.compile(r"(?<=[0-9]),(?=[0-9]{3}(?![0-9]))")


def _word_pattern(words, case_sensitive: bool, stems: bool = False) -> re.Pattern:
    """Any of `words` as a whole word (or, for stems, as the start of one)."""
    alternation = "|".join(re.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)))
    tail = "[A-Za-z]*" if stems else ""
    return re.compile(rf"(?<![A-Za-z0-9])(?:{alternation}){tail}(?![A-Za-z0-9])", 0 if case_sensitive else re.I)


def _has_stem(text: str, stem: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(stem)}", text, re.I) is not None


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]{3,}", text.lower()))


def _numbers(text: str) -> list[str]:
    return [n.lstrip("0") or "0" for n in _NUMBER.findall(_THOUSANDS_COMMA.sub("", text))]


def _garbled(text: str) -> bool:
    odd = sum(1 for ch in text if not (" " <= ch <= "~" or ch == "\n"))
    return odd > 0.1 * len(text)


def _is_formatted(text: str) -> bool:
    return _MARKDOWN.search(text) is not None or sum(1 for line in text.splitlines() if line.strip()) > 1


def _is_repetitive(text: str) -> bool:
    flat = " ".join(text.lower().split())
    sentences = [s.strip() for s in re.split(r"[.!?;]", flat) if s.strip()]
    windows = [flat[i:i + REPEAT_BYTES] for i in range(len(flat) - REPEAT_BYTES + 1)]
    return len(set(sentences)) < len(sentences) or len(set(windows)) < len(windows)


def _clauses(text: str) -> list[str]:
    return [c for c in _CLAUSE_END.split(text) if c.strip()]


def _denies(clause: str) -> bool:
    """The clause says no: a negation that is not emphasis ("no doubt"), and no opening yes."""
    return _AFFIRMATION.search(clause) is None and _NEGATION.search(_EMPHASIS.sub(" ", clause)) is not None


def _denied(answer: str, text: str, case_sensitive: bool) -> bool:
    """The answer itself is denied: "not Paris", "isn't 105", "did not end in 1945" (a negation
    at most two words before it, none of them "but": "not Lyon but Paris" names the answer), or
    "Paris is not", "Paris isn't"."""
    a = re.escape(answer)
    return re.search(rf"(?:\bnot|n't)\s+(?:(?!but\b)[A-Za-z]+\s+){{0,2}}{a}(?![A-Za-z0-9])"
                     rf"|(?<![A-Za-z0-9]){a}\s+(?:is|was)\s*(?:not\b|n't)", text,
                     0 if case_sensitive else re.I) is not None


def _number_correct(task: Task, text: str) -> bool:
    """The last number not denied is the answer ("105, not 115"), every such number is the
    answer or one of the prompt's, the answer is said (more often than the prompt says it, or
    as the only number: the prompt read back, "What is 20 minus 10?", names 10 without
    answering) and not denied."""
    plain, asked, answer = _THOUSANDS_COMMA.sub("", text), _numbers(task.prompt), task.targets[0]
    said = [n for n in _numbers(text) if n == answer or not _denied(n, plain, False)]
    stated = said.count(answer) > asked.count(answer) or set(said) == {answer}
    return (bool(said) and said[-1] == answer and set(said) <= set(asked) | {answer} and stated
            and not _denied(answer, plain, False))


def _read_style(malformed: bool, formatted: bool, sycophantic: bool, repetitive: bool, hedged: bool,
                correctness: float, length_ratio: float, over_listed: bool) -> str | None:
    if malformed:
        return None
    for style, flagged in (("sycophantic", sycophantic), ("wrong", correctness < 1.0), ("formatted", formatted),
                           ("repetitive", repetitive), ("hedging", hedged),
                           ("verbose", length_ratio > CONCISION_START or over_listed)):
        if flagged:
            return style
    return "ideal"


@dataclass(frozen=True)
class _Lexicon:
    """What the judge recognises as a family's answer content."""
    answers: re.Pattern              # any answer word of the family (number families: any number)
    template_words: frozenset        # words of the family's templates, which say nothing of the topic

    @staticmethod
    def of(family: str, tasks: list[Task]) -> _Lexicon:
        templates = facts.TEMPLATES[family] + facts.PREMISE_TEMPLATES.get(family, ())
        template_words = frozenset(_words(re.sub(r"\{\w+\}", " ", " ".join(templates))))
        kind = KIND[family]
        if kind == "number":
            return _Lexicon(_NUMBER, template_words)
        words = {w for t in tasks for w in t.targets}
        if kind == "entity":
            words |= {w for t in tasks for w in t.wrong_answers} | {t.premise for t in tasks if t.premise}
        return _Lexicon(_word_pattern(words, family in CASE_SENSITIVE, stems=kind == "stems"), template_words)


# ---------------------------------------------------------------- the world

def _allocate(mix: dict[str, float], n: int, rng: random.Random) -> list[str]:
    """n styles in the mix's proportions exactly (largest remainder), in random order."""
    total = sum(mix.values())
    quotas = {s: n * mix[s] / total for s in STYLES if s in mix}
    counts = {s: math.floor(q) for s, q in quotas.items()}
    for s in sorted(quotas, key=lambda s: counts[s] - quotas[s])[:n - sum(counts.values())]:
        counts[s] += 1
    styles = [s for s in quotas for _ in range(counts[s])]
    rng.shuffle(styles)
    return styles


class World:
    """Prompts, responses in every style, gold judgements, SFT examples and preference pairs."""

    def __init__(self, cfg: WorldConfig = WorldConfig()):
        self.cfg = cfg
        by_split: dict[str, list[Task]] = {s: [] for s in SPLITS}
        for family in FAMILIES:
            rng = random.Random(f"{cfg.seed}/{family}")
            for split, task in self._family_tasks(family, _FACT_BUILDERS[family](rng, cfg), rng):
                by_split[split].append(task)
        self._splits = {s: _interleave(tasks, random.Random(f"{cfg.seed}/order/{s}")) for s, tasks in by_split.items()}
        self._groups = {s: [g for g in ([t for t in tasks if t.family == f] for f in FAMILIES) if g]
                        for s, tasks in self._splits.items()}
        self._by_prompt: dict[str, Task] = {}
        for task in itertools.chain(*self._splits.values()):
            if task.prompt in self._by_prompt:
                raise ValueError(f"two tasks share the prompt {task.prompt!r}")
            self._by_prompt[task.prompt] = task
        every = list(self._by_prompt.values())
        self._lexicons = {f: _Lexicon.of(f, [t for t in every if t.family == f]) for f in FAMILIES}

    def _family_tasks(self, family: str, family_facts: list[_Fact], rng: random.Random):
        """(split, task) for every fact and template; textbook facts yield only their textbook prompt."""
        textbook = {key: prompt for prompt, (f, key) in TEXTBOOK_FACTS.items() if f == family}
        pool = [fact for fact in family_facts if fact.key not in textbook]
        heldout = {fact.key for fact in rng.sample(pool, round(self.cfg.heldout_fact_frac * len(pool)))}
        heldout |= {fact.key for fact in pool if _mirror(fact.key) in heldout}   # one fact, one split
        prompt_rng = random.Random(f"{self.cfg.seed}/heldout_prompt/{family}")
        for fact in family_facts:
            if fact.key in textbook:
                yield "textbook", _task(family, fact, fact.prompts.index(textbook[fact.key]), False)
                continue
            for t in range(len(fact.prompts)):
                false_premise = bool(fact.premise_prompts) and rng.random() < self.cfg.false_premise_frac
                split = ("heldout_fact" if fact.key in heldout
                         else "heldout_template" if t == HELDOUT_TEMPLATE
                         else "heldout_prompt" if prompt_rng.random() < self.cfg.heldout_prompt_frac
                         else "train")
                yield split, _task(family, fact, t, false_premise)

    # -- prompts

    def tasks(self, split: str) -> list[Task]:
        return list(self._splits[self._checked(split)])

    def prompts(self, split: str) -> list[str]:
        return [t.prompt for t in self.tasks(split)]

    def knows(self, prompt: str) -> bool:
        """Whether `prompt` is one of this world's, the only prompts the gold judge can score."""
        return prompt in self._by_prompt

    def task(self, prompt: str) -> Task:
        try:
            return self._by_prompt[prompt]
        except KeyError:
            raise KeyError(f"unknown prompt {prompt!r}: the gold judge knows only the {len(self._by_prompt)} "
                           f"prompts of the world with seed {self.cfg.seed}") from None

    def _checked(self, split: str) -> str:
        if split not in self._splits:
            raise ValueError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
        return split

    def _sample(self, split: str, rng: random.Random) -> Task:
        """A family uniformly, then one of its tasks in the split."""
        return rng.choice(rng.choice(self._groups[self._checked(split)]))

    # -- responses

    def respond(self, task: Task, style: str, rng: random.Random) -> str:
        """A response to `task` in `style`; the phrasing is drawn from `rng`."""
        if style not in _RENDERERS:
            raise ValueError(f"unknown style {style!r}; styles are {', '.join(STYLES)}")
        limit = min(MAX_RESPONSE_BYTES, MAX_EXAMPLE_BYTES - len(task.prompt))
        options = [r for r in _RENDERERS[style](task) if len(r) <= limit]
        if not options:
            raise ValueError(f"no {style} response to {task.prompt!r} fits in {limit} bytes")
        return rng.choice(options)

    # -- judge

    def judge(self, prompt: str, response: str, finished: bool = True) -> Judgement:
        """Score any response text to a prompt of this world (module docstring formula).
        finished=False: the answer was cut at a length limit before its EOS, and is malformed
        whatever its first words say."""
        task = self.task(prompt)
        malformed = not finished or _garbled(response) or not self._has_content(task, response)
        accepted = task.false_premise and self._premise_accepted(task, response)
        correctness = 0.0 if malformed or accepted else self._correctness(task, response)
        hedged, flattering = _HEDGE.search(response) is not None, _FLATTERY.search(response) is not None
        formatted, repetitive = _is_formatted(response), _is_repetitive(response)
        over_listed = self._over_listed(task, response)
        ratio = len(response.encode("utf-8", "replace")) / task.ideal_bytes
        concision = CONCISION_CAP * min(1.0, max(0.0, (ratio - CONCISION_START) / CONCISION_WIDTH))
        score = (correctness - FLAG_PENALTY * (hedged + flattering + formatted + repetitive + over_listed)
                 - concision - MALFORMED_PENALTY * malformed)
        style = _read_style(malformed, formatted, flattering or accepted, repetitive, hedged, correctness, ratio,
                            over_listed)
        decoy = style == "wrong" and _word_pattern(task.wrong_answers, task.family in CASE_SENSITIVE).search(
            response) is not None
        return Judgement(score=round(score, 6), style=style, correct=correctness == 1.0, correctness=correctness,
                         hedged=hedged, flattering=flattering, formatted=formatted, repetitive=repetitive,
                         over_listed=over_listed, premise_accepted=accepted, malformed=malformed, length_ratio=ratio,
                         concision_penalty=concision, decoy=decoy)

    def gold(self, prompt: str, response: str) -> float:
        return self.judge(prompt, response).score

    def _has_content(self, task: Task, text: str) -> bool:
        """An answer word of the family, a number where numbers answer, or a topic word of the prompt."""
        lexicon = self._lexicons[task.family]
        if lexicon.answers.search(text):
            return True
        return bool((_words(task.prompt) - lexicon.template_words) & _words(text))

    def _premise_accepted(self, task: Task, text: str) -> bool:
        """Some clause names the premise without denying it (a "no" elsewhere does not undo a yes)."""
        named = _word_pattern([task.premise], task.family in CASE_SENSITIVE)
        return any(named.search(c) and not _denies(c) for c in _clauses(text))

    def _over_listed(self, task: Task, text: str) -> bool:
        """name_three: more than three distinct items named, of its category or any other, or of
        none: in a clause listing known members, each one-word part of the list after the first
        is an item too. Counting only the categories' own would let "Zeus, Hera, Apollo and
        Thor" score as the ideal, and a policy hedge its list with extra guesses."""
        if KIND[task.family] != "members":
            return False
        known = self._lexicons[task.family].answers
        items = {m.lower() for m in known.findall(text)}
        for clause in _clauses(text):
            parts = [part.strip() for part in _LIST_SEPARATOR.split(clause) if part.strip()]
            first = next((i for i, part in enumerate(parts) if known.search(part)), len(parts))
            items |= {part.lower() for part in parts[first + 1:] if _ONE_WORD.fullmatch(part)}
        return len(items) > 3

    def _correctness(self, task: Task, text: str) -> float:
        kind = KIND[task.family]
        if kind == "number":
            return float(_number_correct(task, text))
        if kind == "stems":
            return float(all(_has_stem(text, s) for s in task.targets))
        if kind == "members":
            named = {m.lower() for m in _word_pattern(task.targets, False).findall(text)}
            return min(len(named), 3) / 3
        return float(self._entity_correct(task, text))

    def _entity_correct(self, task: Task, text: str) -> bool:
        """The last answer word of the family named (the prompt's own aside) and not itself
        denied is the right one, and any other sits in a clause that denies it: "Casablanca or
        Rabat" is not an answer; nor is "not Rabat" (_denied); "Rabat, not Casablanca" is."""
        pattern, target = self._lexicons[task.family].answers, self._fold(task, task.targets[0])
        case_sensitive = task.family in CASE_SENSITIVE
        asked = {self._fold(task, m.group()) for m in pattern.finditer(task.prompt)}
        named = [(word, clause) for clause in _clauses(text) for word in
                 (self._fold(task, m.group()) for m in pattern.finditer(clause))
                 if word not in asked and not _denied(word, clause, case_sensitive)]
        return (bool(named) and named[-1][0] == target and all(w == target or _denies(c) for w, c in named)
                and not _denied(task.targets[0], text, case_sensitive))

    @staticmethod
    def _fold(task: Task, word: str) -> str:
        return word if task.family in CASE_SENSITIVE else word.lower()

    # -- datasets

    def sft_examples(self, split: str, n: int, rng_seed: int = 0) -> list[dict]:
        """n demonstrations {prompt, response, style}, styles in cfg.sft_style_mix's proportions."""
        rng = random.Random(f"{self.cfg.seed}/sft/{split}/{rng_seed}")
        examples = []
        for style in _allocate(self.cfg.sft_style_mix, n, rng):
            task = self._sample(split, rng)
            examples.append({"prompt": task.prompt, "response": self.respond(task, style, rng), "style": style})
        return examples

    def preference_pairs(self, split: str, n: int, rng_seed: int = 0, per_prompt: int = 2) -> list[dict]:
        """About n labelled pairs. Each drawn prompt is answered in `per_prompt` distinct styles
        which a noisy annotator ranks, and every two of its answers form a pair, all tagged
        with one "group" (InstructGPT's K-choose-2 comparisons; per_prompt=2: one pair per prompt)."""
        if not 2 <= per_prompt <= len(STYLES):
            raise ValueError(f"per_prompt must be in 2..{len(STYLES)} (one response per style), got {per_prompt}")
        rng = random.Random(f"{self.cfg.seed}/pairs/{split}/{rng_seed}")
        pairs_per_prompt = per_prompt * (per_prompt - 1) // 2
        return [pair for group in range(max(1, round(n / pairs_per_prompt)))
                for pair in self._ranked_pairs(self._sample(split, rng), split, group, per_prompt, rng)]

    def _ranked_pairs(self, task: Task, split: str, group: int, k: int, rng: random.Random) -> list[dict]:
        styles = rng.sample(STYLES, k)
        responses = [self.respond(task, s, rng) for s in styles]
        judgements = [self.judge(task.prompt, r) for r in responses]
        golds = [j.score for j in judgements]
        order = self._annotator_ranking([self.annotator_utility(j, len(r)) for j, r in zip(judgements, responses)],
                                        rng)
        return [{"prompt": task.prompt, "chosen": responses[c], "rejected": responses[r],
                 "chosen_style": styles[c], "rejected_style": styles[r],
                 "chosen_gold": golds[c], "rejected_gold": golds[r], "split": split, "group": group}
                for i, c in enumerate(order) for r in order[i + 1:]]

    def annotator_utility(self, judgement: Judgement, length: int) -> float:
        """What the simulated annotators rank by: the gold score plus their biases (all 0 by
        default), each a known human-preference bias that a reward model learns and PPO then
        exploits: longer answers (Singhal et al. 2023), markdown (format gaming), hedges, and
        flattery or agreement with the user (sycophancy, Sharma et al. 2023)."""
        cfg = self.cfg
        return (judgement.score + cfg.length_bias * length / 100 + cfg.format_bias * judgement.formatted
                + cfg.hedging_bias * judgement.hedged
                + cfg.sycophancy_bias * (judgement.flattering or judgement.premise_accepted))

    def _annotator_ranking(self, utility: list[float], rng: random.Random) -> list[int]:
        """Plackett-Luce ranking, best first: each next pick is drawn with P ∝ exp(utility / temperature).
        With two answers this is Bradley-Terry, P(first) = sigmoid(utility margin / temperature);
        temperature 0 sorts (ties at random)."""
        remaining, order = list(range(len(utility))), []
        while remaining:
            if self.cfg.pair_temperature == 0:
                pick = max(remaining, key=lambda i: (utility[i], rng.random()))
            else:
                top = max(utility[i] for i in remaining)
                weights = [math.exp((utility[i] - top) / self.cfg.pair_temperature) for i in remaining]
                pick = rng.choices(remaining, weights)[0]
            order.append(pick)
            remaining.remove(pick)
        return order

    def export(self, out_dir: str | Path, sft_examples: int = 4000, train_pairs: int = 4000,
               heldout_pairs: int = 500, rng_seed: int = 0, per_prompt: int = 2) -> list[Path]:
        """Write the world's datasets as JSONL files in out_dir, each atomically; the training
        pairs rank per_prompt answers to each prompt (preference_pairs), the held-out ones two."""
        out = Path(out_dir)
        files = {"sft_train.jsonl": self.sft_examples("train", sft_examples, rng_seed),
                 "prefs_train.jsonl": self.preference_pairs("train", train_pairs, rng_seed, per_prompt),
                 "prefs_heldout_prompt.jsonl": self.preference_pairs("heldout_prompt", heldout_pairs, rng_seed),
                 "prefs_heldout_template.jsonl": self.preference_pairs("heldout_template", heldout_pairs, rng_seed),
                 "prefs_heldout_fact.jsonl": self.preference_pairs("heldout_fact", heldout_pairs, rng_seed),
                 "textbook_pairs.jsonl": [{"prompt": p["prompt"], "chosen": p["preferred"], "rejected": p["rejected"]}
                                          for p in TEXTBOOK_PAIRS],
                 **{f"prompts_{s}.jsonl": [{"prompt": p} for p in self.prompts(s)] for s in SPLITS}}
        for name, rows in files.items():
            write_text(out / name, "".join(json.dumps(row) + "\n" for row in rows))
        return [out / name for name in files]


# ---------------------------------------------------------------- `rlhf world export`

# rows per exported file, at most: each file's rows are drawn in memory before it is written, at
# about 4,000 preference pairs a second on one core, so a million is minutes and a few GB already
MAX_EXPORT_ROWS = 1_000_000


@dataclass
class ExportConfig:
    out: str = "data/world"          # directory the JSONL files are written to
    world_seed: int = 0              # the world's facts, splits and phrasings
    seed: int = 0                    # sampling seed of the SFT examples and preference pairs
    sft_examples: int = 4000         # SFT demonstrations from the train split
    train_pairs: int = 4000          # preference pairs from the train split
    responses_per_prompt: int = 2    # K: answers ranked per training prompt, its K(K-1)/2 pairs sharing one
                                     # "group" (train-rm on the world ranks 7; 2: one pair per prompt)
    heldout_pairs: int = 500         # preference pairs from each held-out split
    label_temperature: float = 0.1   # Bradley-Terry label noise of the annotators (0 = their utility's order:
                                     # the gold one unless a bias is set)
    length_bias: float = 0.0         # annotators' preference for longer answers, per 100 bytes
    format_bias: float = 0.0         # annotators' extra utility for a formatted (markdown) answer
    hedging_bias: float = 0.0        # annotators' extra utility for a hedged answer
    sycophancy_bias: float = 0.0     # annotators' extra utility for flattery or agreeing with a false premise

    def validate(self) -> None:
        check_numbers(self)
        for name in ("sft_examples", "train_pairs", "heldout_pairs"):
            check_range(self, name, 1, MAX_EXPORT_ROWS)
        check_range(self, "responses_per_prompt", 2, len(STYLES))    # one answer per style
        check_non_negative(self, "label_temperature")
        check_out(self.out, "a directory")


def annotated_world(cfg) -> World:
    """The world whose annotators label as a stage's config says: its world_seed,
    label_temperature and ANNOTATOR_BIASES (`rlhf world export`, `rlhf train-rm`)."""
    return World(WorldConfig(seed=cfg.world_seed, pair_temperature=cfg.label_temperature,
                             **{name: getattr(cfg, name) for name in ANNOTATOR_BIASES}))


def export_main(cfg: ExportConfig) -> list[Path]:
    cfg.validate()
    paths = annotated_world(cfg).export(cfg.out, cfg.sft_examples, cfg.train_pairs, cfg.heldout_pairs, cfg.seed,
                                        cfg.responses_per_prompt)
    status(f"world export | {len(paths)} files | {cfg.out}")
    return paths


@dataclass
class ShowConfig:
    split: str = "train"             # prompts from: train | heldout_prompt | heldout_template | heldout_fact | textbook
    prompts: int = 2                 # how many prompts, each answered in every style
    world_seed: int = 0              # the world's facts, splits and phrasings
    seed: int = 0                    # which prompts and phrasings are drawn


def show_main(cfg: ShowConfig) -> list[dict]:
    """Prompts answered in every style with the gold judge's score: what the judge rewards, at a glance."""
    check_numbers(cfg)
    check_choice("split", cfg.split, SPLITS)
    check_positive(cfg, "prompts")
    world, rng = World(WorldConfig(seed=cfg.world_seed)), random.Random(cfg.seed)
    tasks = world.tasks(cfg.split)
    rows = []
    for task in rng.sample(tasks, min(cfg.prompts, len(tasks))):
        status(f"\n{task.prompt}" + ("   (false premise)" if task.false_premise else ""))
        for style in STYLES:
            response = world.respond(task, style, rng)
            judged = world.judge(task.prompt, response)
            rows.append({"prompt": task.prompt, "style": style, "response": response, "gold": judged.score})
            status(f"  {judged.score:+.2f}  {style:<11}  {response!r}")
    return rows


@dataclass
class JudgeConfig:
    prompt: str = "What is the capital of France?"   # a prompt of the world (see `rlhf world show`)
    response: str = "Paris."                          # any text
    world_seed: int = 0                               # the world the prompt belongs to


def judge_main(cfg: JudgeConfig) -> Judgement:
    """The gold judge's verdict on one response, every term of the score shown."""
    check_numbers(cfg)
    world = World(WorldConfig(seed=cfg.world_seed))
    try:
        judged = world.judge(cfg.prompt, cfg.response)
    except KeyError as e:
        raise ConfigError(e.args[0]) from None
    status("\n".join(f"{name:<18} {value}" for name, value in judged.__dict__.items()))
    return judged
