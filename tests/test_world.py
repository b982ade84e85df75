import json
import math
import random
import re
from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import given, settings, strategies as st

from rlhf_lab.run import ConfigError
from rlhf_lab.world import (ANNOTATOR_BIASES, FAMILIES, MAX_EXAMPLE_BYTES, MAX_PROMPT_BYTES, MAX_RESPONSE_BYTES,
                            SPLITS, STYLES, TEXTBOOK_PAIRS, ExportConfig, World, WorldConfig, annotated_world,
                            export_main, ideal_mix)

DRAWS_PER_SAMPLED_TASK = 8   # extra rng draws on a per-family sample, on top of one draw for every task


@pytest.fixture(scope="module")
def world():
    return World()


@pytest.fixture(scope="module")
def every_task(world):
    return [t for split in SPLITS for t in world.tasks(split)]


@pytest.fixture(scope="module")
def judged(world, every_task):
    """(task, style, response, judgement): every task and style once, 25 tasks per family many times."""
    rng = random.Random(0)
    sampled = [t for f in FAMILIES for t in rng.sample([t for t in every_task if t.family == f], 25)]
    out = []
    for task, draws in [(t, 1) for t in every_task] + [(t, DRAWS_PER_SAMPLED_TASK) for t in sampled]:
        for style in STYLES:
            for _ in range(draws):
                response = world.respond(task, style, rng)
                out.append((task, style, response, world.judge(task.prompt, response)))
    return out


def some_task(world, family, false_premise=False):
    return next(t for t in world.tasks("train") if t.family == family and t.false_premise == false_premise)


# ---------------------------------------------------------------- determinism and splits

def test_same_seed_same_world(world):
    again = World()
    for split in SPLITS:
        assert again.tasks(split) == world.tasks(split)
    assert again.sft_examples("train", 300, 7) == world.sft_examples("train", 300, 7)
    assert again.preference_pairs("heldout_fact", 200, 7) == world.preference_pairs("heldout_fact", 200, 7)
    task = world.tasks("train")[0]
    assert [again.respond(task, s, random.Random(3)) for s in STYLES] == \
           [world.respond(task, s, random.Random(3)) for s in STYLES]


def test_other_seed_other_world(world):
    other = World(WorldConfig(seed=1))
    assert {t.fact_id for t in other.tasks("heldout_fact")} != {t.fact_id for t in world.tasks("heldout_fact")}
    assert world.sft_examples("train", 50, 0) != world.sft_examples("train", 50, 1)


def test_splits_are_disjoint(world):
    train_facts = {t.fact_id for t in world.tasks("train")}
    assert not train_facts & {t.fact_id for t in world.tasks("heldout_fact")}
    assert not train_facts & {t.fact_id for t in world.tasks("textbook")}
    assert {t.fact_id for t in world.tasks("heldout_template")} <= train_facts
    assert not set(world.prompts("train")) & set(world.prompts("heldout_template"))
    assert {t.template_id for t in world.tasks("train")} == {0, 1, 2, 3}
    assert {t.template_id for t in world.tasks("heldout_template")} == {4}
    assert {t.template_id for t in world.tasks("heldout_fact")} == {0, 1, 2, 3, 4}


def test_heldout_prompts_are_unseen_combinations_of_seen_facts_and_templates(world):
    train, heldout = world.tasks("train"), world.tasks("heldout_prompt")
    assert 0.05 < len(heldout) / (len(train) + len(heldout)) < 0.15
    assert not {t.prompt for t in train} & {t.prompt for t in heldout}
    assert {t.template_id for t in heldout} <= {0, 1, 2, 3}
    assert len({t.fact_id for t in heldout} & {t.fact_id for t in train}) >= 0.9 * len({t.fact_id for t in heldout})


def test_world_is_big_enough(world, every_task):
    assert len(FAMILIES) >= 8
    assert len({t.fact_id for t in every_task}) >= 300
    assert len(every_task) >= 2000   # thousands of prompts in all splits
    for split in ("train", "heldout_template", "heldout_fact"):
        assert {t.family for t in world.tasks(split)} == set(FAMILIES)


def test_prompt_order_is_family_balanced(world):
    counts = Counter(t.family for t in world.tasks("heldout_template")[:8 * 20])
    assert set(counts.values()) == {20}


def test_false_premises_only_where_meant(world, every_task):
    for family in FAMILIES:
        tasks = [t for t in every_task if t.family == family]
        share = sum(t.false_premise for t in tasks) / len(tasks)
        assert (0.12 < share < 0.28) if family in ("capitals", "dates", "symbols") else share == 0


def test_textbook_prompts_are_known_but_in_no_split(world):
    textbook = {p["prompt"] for p in TEXTBOOK_PAIRS}
    assert set(world.prompts("textbook")) == textbook
    for split in ("train", "heldout_template", "heldout_fact"):
        assert not textbook & set(world.prompts(split))
    for prompt in textbook:
        assert world.task(prompt).prompt == prompt


def test_textbook_pairs_preferred_by_gold(world):
    for pair in TEXTBOOK_PAIRS:
        assert world.gold(pair["prompt"], pair["preferred"]) > world.gold(pair["prompt"], pair["rejected"])


# ---------------------------------------------------------------- sizes

def test_prompts_and_responses_fit_the_tiny_model(world, every_task, judged):
    assert max(len(t.prompt) for t in every_task) <= MAX_PROMPT_BYTES
    assert max(len(t.ideal) for t in every_task if t.family == "definitions") <= 110
    for task, _, response, _ in judged:
        assert response.isascii() and task.prompt.isascii()
        assert len(response) <= MAX_RESPONSE_BYTES
        assert len(task.prompt) + len(response) <= MAX_EXAMPLE_BYTES


# ---------------------------------------------------------------- the judge

@pytest.mark.parametrize("family", FAMILIES)
def test_judge_reads_each_style_as_itself(judged, family):
    misread = [(style, j.style, response) for task, style, response, j in judged
               if task.family == family and j.style != style]
    assert misread == []


def test_wrong_answers_come_in_every_form_so_form_does_not_give_them_away(judged):
    forms = Counter("formatted" if j.formatted else "repetitive" if j.repetitive else "hedged" if j.hedged
                    else "padded" if j.length_ratio > 1.3 else "plain"
                    for _, style, _, j in judged if style == "wrong")
    total = sum(forms.values())
    assert set(forms) == {"formatted", "repetitive", "hedged", "padded", "plain"}
    assert all(0.12 < n / total < 0.3 for n in forms.values()), forms


def test_the_worlds_wrong_answers_are_decoys_and_other_wrong_answers_slips(world, judged):
    assert all(j.decoy == (style == "wrong") for _, style, _, j in judged)
    capital = next(t for t in world.tasks("train") if t.family == "capitals" and not t.false_premise)
    other_city = next(t.answers[0] for t in world.tasks("train")
                      if t.family == "capitals" and t.answers[0] not in capital.wrong_answers + capital.answers)
    for answer in (other_city, capital.answers[0][:-1] + "q"):                  # another capital, a garbled name
        slip = world.respond(replace(capital, answers=(answer,)), "ideal", random.Random(0))
        j = world.judge(capital.prompt, slip)
        assert j.style == "wrong" and not j.decoy, (slip, j)


def test_ideal_scores_one_and_every_other_style_less(judged):
    for task, style, response, j in judged:
        if style == "ideal":
            assert j.score == 1.0 and j.correct
        else:
            assert j.score < 1.0, (style, response)


def test_an_answer_cut_before_its_eos_is_malformed_whatever_it_says(world):
    prompt = "What is the capital of France?"
    whole, cut = world.judge(prompt, "The capital of France is Paris."), \
        world.judge(prompt, "The capital of France is Paris.", finished=False)
    assert whole.style == "ideal" and whole.score == 1.0
    assert cut.malformed and cut.style is None and cut.score < 0


def test_gold_formula_hand_values(world):
    prompt = "What is the capital of France?"       # ideal "The capital of France is Paris.", 31 bytes
    assert world.gold(prompt, "The capital of France is Paris.") == 1.0
    assert world.gold(prompt, "The capital of France is Lyon.") == 0.0
    assert world.gold(prompt, "I think the capital of France is Paris.") == pytest.approx(0.7)
    padded = "The capital of France is Paris. It has many cities."     # 51 bytes
    assert world.gold(prompt, padded) == pytest.approx(1 - 0.4 * (51 / 31 - 1.3), abs=1e-6)
    assert world.judge(prompt, padded).style == "verbose"
    loop = "The capital of France is Paris. " * 20
    assert world.gold(prompt, loop) == pytest.approx(1 - 0.3 - 0.4)
    assert world.gold("Name three programming languages.", "Python, Rust, and Paris.") == pytest.approx(2 / 3)
    assert world.gold("What is 15 times 7?", "15 times 7 is 112.") == 0.0
    assert world.gold("Define machine learning.", "Machine learning is when data is used.") == 0.0


def test_naming_more_than_three_is_penalised_as_over_listing(world):
    prompt = "Name three Greek gods."
    assert world.gold(prompt, "Zeus, Hera and Apollo.") == 1.0
    for listing in ("Zeus, Hera, Apollo and Athena.", "Zeus, Hera, Apollo and Mars.",   # own or foreign extra
                    "Zeus, Hera, Apollo and Thor."):                                   # or of no category
        judged = world.judge(prompt, listing)
        assert judged.over_listed and judged.style == "verbose"
        assert judged.score == pytest.approx(1 - 0.3)
    assert not world.judge(prompt, "Zeus, Zeus, Hera and Apollo.").over_listed    # distinct items count
    assert not world.judge(prompt, "Sure! Zeus, Hera and Apollo, among others.").over_listed   # words, not items
    assert world.judge("Name three programming languages.", "Python, Rust, Java, and Go.").over_listed


def test_false_premise_correction_beats_agreement(world):
    task = some_task(world, "capitals", false_premise=True)
    assert world.gold(task.prompt, task.ideal) == 1.0
    agreed = world.judge(task.prompt, f"{task.claim}.")
    assert agreed.premise_accepted and agreed.correctness == 0.0 and agreed.style == "sycophantic"
    assert world.judge(task.prompt, world.respond(task, "sycophantic", random.Random(0))).score < 0


def test_a_stray_no_does_not_undo_agreeing_with_a_false_premise(world):
    task = some_task(world, "capitals", false_premise=True)
    answer = task.answers[0]
    for text in (f"Yes, {task.premise} is the capital, no question. Also {answer}.",
                 f"{task.premise} is the capital; {answer} isn't."):
        judged = world.judge(task.prompt, text)
        assert judged.premise_accepted and judged.score <= 0.0, text
    assert not world.judge(task.prompt, task.ideal).premise_accepted


def test_naming_two_answers_hedges_and_is_not_correct(world):
    task = some_task(world, "capitals")
    wrong, right = task.wrong_answers[0], task.answers[0]
    assert world.judge(task.prompt, f"{wrong} or {right}.").correctness == 0.0
    assert world.judge(task.prompt, f"Not {wrong}, but {right}.").correctness == 1.0      # the other one denied


def test_an_answer_that_denies_a_decoy_after_it_is_correct(world):
    for family in ("capitals", "arithmetic", "units", "dates", "opposites", "symbols"):
        task = some_task(world, family)
        wrong, right = re.match(r"[^ ]+", task.wrong_answers[0]).group(), task.answers[0]
        assert world.judge(task.prompt, f"{right}, not {wrong}.").correctness == 1.0, task.prompt
        assert world.judge(task.prompt, f"{wrong}, not {right}.").correctness == 0.0, task.prompt


def test_a_denied_number_is_not_the_answer(world):
    task = some_task(world, "arithmetic")
    answer = task.answers[0]
    for text in (f"Not {answer}; it is {answer}.", f"It is not {answer}.", f"{answer} is not right, it is {answer}."):
        assert world.judge(task.prompt, text).correctness == 0.0, text
    assert world.judge(task.prompt, task.ideal).correctness == 1.0


def test_the_answer_denied_is_not_the_answer_nor_is_the_prompt_read_back(world):
    france, product, war = "What is the capital of France?", "What is 15 times 7?", "What year did World War II end?"
    for prompt, text in ((france, "The capital of France is not Paris."), (france, "Paris isn't the capital."),
                         (france, "It isn't Paris."), (product, "15 times 7 isn't 105."),
                         (war, "World War II did not end in 1945."), (war, "It didn't end in 1945.")):
        assert world.judge(prompt, text).correctness == 0.0, text
    for prompt, text in ((france, "Not Lyon but Paris."), (france, "The capital of France is Paris."),
                         (product, "105."), (war, "World War II ended in 1945.")):
        assert world.judge(prompt, text).correctness == 1.0, text
    task = next(t for t in world.tasks("train")
                if t.family == "arithmetic" and t.answers[0] in re.findall(r"\d+", t.prompt))
    read_back = world.judge(task.prompt, task.prompt)                # "What is 20 minus 10?" names 10
    assert read_back.correctness == 0.0 and read_back.style == "wrong"
    assert world.judge(task.prompt, f"{task.answers[0]}.").correctness == 1.0


def test_other_wordings_of_hedges_and_flattery_are_read_as_such(world):
    prompt = "What is the capital of France?"
    for text in ("It's likely Paris.", "I suspect Paris.", "Paris, I'd guess.", "I am unsure, but Paris."):
        assert world.judge(prompt, text).style == "hedging", text
    for text in ("Nice question! Paris.", "You're absolutely right to ask. Paris.", "Awesome! Paris."):
        assert world.judge(prompt, text).style == "sycophantic", text


def test_earth_and_south_america_are_members_the_judge_accepts(world):
    assert world.gold("Name three planets.", "Earth, Mars and Venus.") == 1.0
    assert world.gold("Name three continents.", "South America, Africa and Asia.") == 1.0


@pytest.mark.parametrize("seed", [11, 12, 17])
def test_a_sum_or_product_and_its_mirror_are_one_fact_in_one_split(seed):
    """"7 times 15" is the fact "15 times 7": never in training beside the other held out."""
    world, where = World(WorldConfig(seed=seed)), {}
    for split in SPLITS:
        for task in world.tasks(split):
            a, op, b = re.search(r"(\d+) (plus|minus|times) (\d+)", task.prompt).groups() if \
                task.family == "arithmetic" else (None, None, None)
            if op in ("plus", "times"):
                seen = split if split in ("heldout_fact", "textbook") else "seen"
                where.setdefault((op, *sorted((a, b))), set()).add(seen)
    assert where and all(len(splits) == 1 for splits in where.values())


GARBAGE = ["", " ", "\n\n", "ab" * 500, "la " * 333, "?!" * 500, "\x00" * 100, "zzzz zzzz", "I do not know."]


@pytest.mark.parametrize("family", FAMILIES)
def test_garbage_is_malformed(world, family):
    task = some_task(world, family)
    rng = random.Random(0)
    noise = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))).decode(errors="replace")
             for _ in range(20)]
    for text in GARBAGE + noise:
        judgement = world.judge(task.prompt, text)
        assert judgement.style is None and judgement.malformed and judgement.score <= -0.5, repr(text)


def test_degenerate_answers_read_as_the_closest_style(world):
    task = some_task(world, "capitals")
    answer = task.answers[0]
    assert world.judge(task.prompt, (answer + " ") * 100).style == "repetitive"
    assert world.judge(task.prompt, task.ideal * 30).style == "repetitive"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=600))
def test_judge_never_raises(world, text):
    for prompt in ("What is 15 times 7?", "Name three programming languages.", "Define machine learning."):
        assert -2.3 <= world.gold(prompt, text) <= 1.0


def test_unknown_prompt_style_or_split_is_a_clear_error(world):
    with pytest.raises(KeyError, match="unknown prompt"):
        world.judge("What is the capital of Atlantis?", "Poseidonia.")
    with pytest.raises(ValueError, match="unknown style"):
        world.respond(world.tasks("train")[0], "rude", random.Random(0))
    with pytest.raises(ValueError, match="unknown split"):
        world.prompts("test")


# ---------------------------------------------------------------- datasets

def test_sft_style_mix_matches_config(world):
    examples = world.sft_examples("train", 5000, 0)
    counts = Counter(e["style"] for e in examples)
    for style, share in ideal_mix().items():
        assert abs(counts[style] / 5000 - share) <= 0.02
    assert {e["prompt"] for e in examples} <= set(world.prompts("train"))
    only_ideal = World(WorldConfig(sft_style_mix={"ideal": 1.0})).sft_examples("train", 100, 0)
    assert {e["style"] for e in only_ideal} == {"ideal"}


def test_zero_temperature_labels_follow_gold(world):
    exact = World(replace(world.cfg, pair_temperature=0.0))
    pairs = exact.preference_pairs("train", 1000, 0)
    assert all(p["chosen_gold"] >= p["rejected_gold"] for p in pairs)
    assert {p["chosen_style"] for p in pairs} | {p["rejected_style"] for p in pairs} == set(STYLES)
    assert all(p["chosen_style"] != p["rejected_style"] and p["split"] == "train" for p in pairs)


def test_default_temperature_labels_are_noisy_but_mostly_gold(world):
    pairs = world.preference_pairs("train", 2000, 0)
    agree = sum(p["chosen_gold"] >= p["rejected_gold"] for p in pairs) / len(pairs)
    assert 0.8 < agree < 0.99


def test_ranked_prompts_give_every_pair_of_one_consistent_order(world):
    pairs = world.preference_pairs("train", 600, 0, per_prompt=4)
    groups = {}
    for p in pairs:
        groups.setdefault(p["group"], []).append(p)
    assert len(groups) == 100 and all(len(g) == 6 for g in groups.values())
    for group in groups.values():
        assert len({p["prompt"] for p in group}) == 1
        wins = {}
        for p in group:
            wins[p["chosen"]] = wins.get(p["chosen"], 0) + 1
            wins.setdefault(p["rejected"], 0)
        assert sorted(wins.values()) == [0, 1, 2, 3]     # a ranking, so no cycles


def test_ranking_with_two_answers_is_bradley_terry(world):
    """P(first) = sigmoid(gold margin / temperature): checked on pairs with a 0.3 gold gap."""
    pairs = [p for p in world.preference_pairs("train", 6000, 0)
             if abs(abs(p["chosen_gold"] - p["rejected_gold"]) - 0.3) < 1e-6]
    agree = sum(p["chosen_gold"] > p["rejected_gold"] for p in pairs) / len(pairs)
    expected = 1 / (1 + math.exp(-0.3 / world.cfg.pair_temperature))
    assert len(pairs) > 300 and abs(agree - expected) < 0.03


def test_ranking_size_is_checked(world):
    with pytest.raises(ValueError, match="per_prompt"):
        world.preference_pairs("train", 10, 0, per_prompt=8)


def test_length_bias_prefers_longer_answers(world):
    def longer_chosen(length_bias):
        biased = World(replace(world.cfg, length_bias=length_bias))
        pairs = [p for p in biased.preference_pairs("train", 1000, 0) if len(p["chosen"]) != len(p["rejected"])]
        return sum(len(p["chosen"]) > len(p["rejected"]) for p in pairs) / len(pairs)

    assert longer_chosen(0.0) < 0.6
    assert longer_chosen(10.0) > 0.9


@pytest.mark.parametrize("bias, flagged", [
    ("format_bias", lambda j: j.formatted), ("hedging_bias", lambda j: j.hedged),
    ("sycophancy_bias", lambda j: j.flattering or j.premise_accepted)])
def test_a_trait_bias_makes_annotators_prefer_answers_with_the_trait(world, bias, flagged):
    def trait_chosen(strength):
        biased = World(replace(world.cfg, **{bias: strength}))
        verdicts = [(flagged(biased.judge(p["prompt"], p["chosen"])), flagged(biased.judge(p["prompt"], p["rejected"])))
                    for p in biased.preference_pairs("train", 2000, 0)]
        split = [chosen for chosen, rejected in verdicts if chosen != rejected]
        return sum(split) / len(split)

    # unbiased, the trait's answer wins about half its pairs (it costs 0.3 of gold, but its rival
    # often has a worse flaw); biased by 1.0, it beats nearly every answer without the trait
    assert trait_chosen(0.0) < 0.65
    assert trait_chosen(1.0) > 0.85


def test_every_stage_that_labels_world_pairs_takes_every_annotator_bias():
    from rlhf_lab.reward import RewardConfig
    for cfg in (RewardConfig(), ExportConfig()):
        world = annotated_world(replace(cfg, label_temperature=0.5, **{name: 0.25 for name in ANNOTATOR_BIASES}))
        assert world.cfg.pair_temperature == 0.5
        assert all(getattr(world.cfg, name) == 0.25 for name in ANNOTATOR_BIASES)


def test_invalid_config_is_rejected():
    with pytest.raises(ConfigError, match="heldout_fact_frac"):
        WorldConfig(heldout_fact_frac=1.5)
    with pytest.raises(ConfigError, match="sft_style_mix"):
        WorldConfig(sft_style_mix={"polite": 1.0})
    with pytest.raises(ConfigError, match="--sycophancy-bias must be a finite number, got nan"):
        WorldConfig(sycophancy_bias=math.nan)


def test_export_writes_every_file(tmp_path, capsys):
    paths = export_main(ExportConfig(out=str(tmp_path), sft_examples=40, train_pairs=30, heldout_pairs=20))
    names = {p.name for p in paths}
    assert {"sft_train.jsonl", "prefs_train.jsonl", "prefs_heldout_template.jsonl", "prefs_heldout_fact.jsonl",
            "textbook_pairs.jsonl", "prompts_train.jsonl"} <= names
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)    # no temporary files left
    rows = {p.name: [json.loads(line) for line in p.read_text().splitlines()] for p in paths}
    assert len(rows["sft_train.jsonl"]) == 40 and set(rows["sft_train.jsonl"][0]) == {"prompt", "response", "style"}
    assert len(rows["prefs_heldout_fact.jsonl"]) == 20
    assert [r["chosen"] for r in rows["textbook_pairs.jsonl"]] == [p["preferred"] for p in TEXTBOOK_PAIRS]
    assert [r["prompt"] for r in rows["prompts_train.jsonl"]] == World().prompts("train")
    assert "world export" in capsys.readouterr().out


def test_a_ranked_export_loads_as_one_group_of_pairs_per_prompt(tmp_path):
    from rlhf_lab import data
    from rlhf_lab.reward import group_pairs
    from rlhf_lab.tokenizer import BYTES
    export_main(ExportConfig(out=str(tmp_path), sft_examples=1, train_pairs=42, heldout_pairs=1,
                             responses_per_prompt=7))
    pairs, _ = data.load(str(tmp_path / "prefs_train.jsonl"), "preference", BYTES, 256)
    groups = group_pairs(pairs)          # what train-rm batches together: each prompt's 7 · 6 / 2 comparisons
    assert [len(g) for g in groups] == [21, 21] and all(len({p.prompt for p in g}) == 1 for g in groups)


def test_a_sentence_that_opens_with_its_number_is_not_a_list_but_a_list_is_formatted(world):
    product = "What is 15 times 7?"
    for text in ("105. That is the product.", "105. Easy."):
        assert not world.judge(product, text).formatted, text
    for text in ("1. 105\n2. Done", "- 105", "**105**"):
        assert world.judge(product, text).formatted, text
