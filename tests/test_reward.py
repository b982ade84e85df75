import json
import math

import pytest
import torch

from rlhf_lab import optim, tokenizer
from rlhf_lab.data import PreferencePair
from rlhf_lab.model import GPTConfig, MiniGPT, token_logprobs
from rlhf_lab.reward import (RewardEnsemble, RewardModel, bradley_terry_loss, encode_responses, group_pairs,
                             load_reward_model, pair_rewards, pool, save_reward_model, score_pairs)
from rlhf_lab.evaluate import calibration_noise_floor, expected_calibration_error, pair_accuracy, reward_report
from rlhf_lab.world import STYLES, World
from rlhf_lab.tokenizer import BYTES
from reference import TINY, assert_one_step_trains_all_but



def tiny_reward_model(seed=0, pooling="last", likelihood_weight=0.0):
    torch.manual_seed(seed)
    return RewardModel(MiniGPT(TINY), pooling, likelihood_weight)


def test_bradley_terry_loss_hand_value():
    loss = bradley_terry_loss(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0]))
    expected = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(1.0))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_bradley_terry_loss_is_finite_where_sigmoid_underflows():
    assert bradley_terry_loss(torch.tensor([-200.0]), torch.tensor([200.0])).item() == pytest.approx(400.0)


def test_every_trunk_parameter_gets_a_gradient_and_changes():
    # the head's bias and the final LayerNorm's bias only shift every reward alike
    assert_one_step_trains_all_but(tiny_reward_model(), {"head.bias", "backbone.ln_final.bias"})


def test_last_token_pooling_picks_last_real_token_under_left_and_right_padding():
    scores = torch.arange(12.0).view(2, 6)
    right = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    left = torch.tensor([[0, 0, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1]], dtype=torch.bool)
    start = torch.tensor([1, 1])
    assert pool(scores, right, start, "last").tolist() == [2.0, 11.0]
    assert pool(scores, left, start, "last").tolist() == [5.0, 11.0]


def test_mean_pooling_averages_response_tokens_only():
    scores = torch.tensor([[1.0, 2.0, 3.0, 5.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]], dtype=torch.bool)
    assert pool(scores, mask, torch.tensor([2]), "mean").item() == pytest.approx(4.0)


def test_likelihood_read_out_trains_every_parameter_but_the_shift():
    model = tiny_reward_model(likelihood_weight=5.0)
    # a gate open alike on every token is a plain mean, which its bias (scaling every
    # weight together) cannot change; give the gate a slope first, as one step would
    torch.nn.init.normal_(model.likelihood_gate.weight, std=0.5)
    assert_one_step_trains_all_but(model, {"head.bias"})


def test_likelihood_read_out_starts_as_the_mean_response_log_prob():
    model = tiny_reward_model(likelihood_weight=2.0).eval()
    plain = tiny_reward_model(likelihood_weight=0.0).eval()
    plain.load_state_dict(model.state_dict(), strict=False)
    tokens, mask, start = encode_responses(BYTES, ["Q?"], ["an answer"], "cpu")
    with torch.no_grad():
        logprobs, _ = token_logprobs(model.backbone, tokens, mask, int(start))
        expected = plain(tokens, mask, start) + 2.0 * logprobs.mean()
        assert model(tokens, mask, start).item() == pytest.approx(expected.item(), abs=1e-5)


@pytest.mark.parametrize("pooling,likelihood_weight", [("last", 0.0), ("mean", 0.0), ("last", 5.0)])
def test_reward_does_not_depend_on_the_padding_of_its_batch(pooling, likelihood_weight):
    model = tiny_reward_model(pooling=pooling, likelihood_weight=likelihood_weight).eval()
    with torch.no_grad():
        alone = model(*encode_responses(BYTES, ["Q?"], ["short"], "cpu"))
        batched = model(*encode_responses(BYTES, ["Q?", "a much longer prompt here?"], ["short", "x" * 30], "cpu"))
        tokens, start = BYTES.encode_pair("Q?", "short")
        left, mask = BYTES.left_pad([tokens, tokens + [65] * 9])
        left_start = torch.tensor([start + 9, start])
        left_padded = model(left, mask, left_start)
    assert batched[0].item() == pytest.approx(alone.item(), abs=1e-5)
    assert left_padded[0].item() == pytest.approx(alone.item(), abs=1e-5)


def test_training_on_an_easy_separable_set_reaches_full_accuracy():
    model = tiny_reward_model()
    optimizer = optim.adamw([model], 3e-3, 0.0)
    pairs = [PreferencePair(f"Question {i}?", f"Yes {i}.", f"No, no, no {i}!") for i in range(32)]
    for _ in range(40):
        chosen, rejected = pair_rewards(model, BYTES, pairs, "cpu")
        bradley_terry_loss(chosen, rejected).backward()
        optim.clip_and_step(optimizer, [model], 1.0)
    held_out = [PreferencePair(f"Question {i}?", f"Yes {i}.", f"No, no, no {i}!") for i in range(100, 120)]
    assert pair_accuracy(*score_pairs(model, held_out, "cpu")) == 1.0


def test_ranked_pairs_score_each_answer_once_and_match_scoring_alone():
    model = tiny_reward_model().eval()
    answers = ["Paris.", "It might be Paris.", "Lyon.", "# Paris"]
    pairs = [PreferencePair("Capital of France?", a, b, meta={"group": 0})
             for i, a in enumerate(answers) for b in answers[i + 1:]]
    seen = []
    def counting(tokens, mask, start):
        seen.append(len(tokens))
        return model(tokens, mask, start)
    chosen, rejected = pair_rewards(counting, BYTES, pairs, "cpu")
    assert seen == [4]
    alone = {a: model(*encode_responses(BYTES, ["Capital of France?"], [a], "cpu")).item() for a in answers}
    assert chosen.tolist() == pytest.approx([alone[p.chosen] for p in pairs], abs=1e-5)
    assert rejected.tolist() == pytest.approx([alone[p.rejected] for p in pairs], abs=1e-5)


def test_pairs_of_one_ranked_prompt_stay_in_one_group():
    ranked = [PreferencePair("Q", f"a{i}", f"b{i}", meta={"group": i // 3}) for i in range(6)]
    loose = [PreferencePair("Q", "x", "y"), PreferencePair("Q", "x", "y")]
    loose += [PreferencePair("Q", "x", "y", meta={"group": None}) for _ in range(2)]    # a null group is none
    groups = group_pairs(ranked + loose)
    assert [len(g) for g in groups] == [3, 3, 1, 1, 1, 1]
    assert groups[0] == ranked[:3]


def test_normalisation_prompts_are_cut_to_leave_the_sft_model_room_to_answer():
    from rlhf_lab.data import ANSWER_ROOM
    from rlhf_lab.reward import normalisation_prompts
    from rlhf_lab.run import ConfigError
    pairs = [PreferencePair("x" * 300 + "?", "yes", "no"), PreferencePair("short?", "a", "b"),
             PreferencePair("short?", "b", "c")]
    long, short = normalisation_prompts(pairs, MiniGPT(GPTConfig(context_len=256)), "sft")
    assert short == "short?" and long.endswith("x?")
    assert len(BYTES.encode_pair(long, "x" * ANSWER_ROOM)[0]) == 256
    with pytest.raises(ConfigError, match="context of 40 tokens"):
        normalisation_prompts(pairs, MiniGPT(GPTConfig(context_len=40)), "sft")


def test_ensemble_conservative_score_and_round_trip(tmp_path):
    members = [tiny_reward_model(seed, likelihood_weight=5.0) for seed in (0, 1)]
    save_reward_model(tmp_path / "model.safetensors", members, std_coef=1.0)
    loaded = load_reward_model(tmp_path)
    assert isinstance(loaded, RewardEnsemble)
    batch = encode_responses(BYTES, ["Q?", "R?"], ["a", "bb"], "cpu")
    with torch.no_grad():
        each = torch.stack([m.score(*batch) for m in members])
        assert torch.allclose(loaded.score(*batch), each.mean(0) - each.std(0, unbiased=False), atol=1e-6)


def test_ece_is_the_gap_between_accuracy_and_confidence():
    # 4 pairs at confidence σ(ln 2.5) = 5/7 of which 3 are right: ECE = |0.75 - 5/7|
    margin = torch.full((4,), math.log(2.5))
    chosen = torch.stack([margin[0], margin[1], margin[2], -margin[3]])
    ece, bins = expected_calibration_error(chosen, torch.zeros(4))
    assert ece == pytest.approx(0.75 - 5 / 7, abs=1e-6)
    assert len(bins) == 1 and bins[0][1] == pytest.approx(0.75)


def test_the_ece_noise_floor_shrinks_with_pairs_and_vanishes_for_certain_pairs():
    margins = torch.linspace(-2, 2, 10_000)             # confidences from 0.5 to 0.88
    few = calibration_noise_floor(margins[::100], torch.zeros(100))
    many = calibration_noise_floor(margins, torch.zeros(10_000))
    assert few > 2 * many and many < 0.02
    assert calibration_noise_floor(torch.full((50,), 30.0), torch.zeros(50)) < 1e-6


def test_heldout_ece_reads_the_raw_log_odds_of_a_normalised_model(tmp_path):
    from rlhf_lab.data import PreferencePair
    from rlhf_lab.evaluate import heldout_figures
    model = tiny_reward_model(likelihood_weight=1.0)
    model.offset.fill_(0.7)
    model.scale.fill_(0.05)          # normalised margins 20× the raw ones: ECE would differ
    pairs = [PreferencePair(f"Q{i}?", "yes" * (i % 3 + 1), "no" * (i % 5 + 1)) for i in range(40)]
    figures = heldout_figures(model, {"heldout": pairs}, None, tmp_path, "cpu")
    raw_ece = expected_calibration_error(*score_pairs(model, pairs, "cpu", raw=True))[0]
    assert figures["ece"] == pytest.approx(raw_ece, abs=1e-6)
    assert figures["ece"] != pytest.approx(expected_calibration_error(*score_pairs(model, pairs, "cpu"))[0])


class GoldOracle(torch.nn.Module):
    """A 'reward model' that reads each row back to text and asks the gold judge."""

    def __init__(self, world):
        super().__init__()
        self.world = world
        self.config = GPTConfig()       # the world's context, as the reward models it stands in for
        self.tokenizer = BYTES

    def forward(self, tokens, mask, start):
        rewards = []
        for row, n, s in zip(tokens.tolist(), mask.sum(-1).tolist(), start.tolist()):
            prompt, response = BYTES.decode(row[1:s - 1]), BYTES.decode(row[s:n - 1])
            rewards.append(self.world.gold(prompt, response))
        return torch.tensor(rewards)

    score = forward     # the gold scale is both its raw and its normalised reward


def test_report_calls_the_gold_judge_itself_perfect_on_every_split(tmp_path):
    world = World()
    as_pairs = lambda rows: [PreferencePair(r["prompt"], r["chosen"], r["rejected"]) for r in rows]
    heldout = {"heldout_prompt": as_pairs(world.preference_pairs("heldout_prompt", 60, 1)),
               "heldout_fact": as_pairs(world.preference_pairs("heldout_fact", 40, 1))}
    metrics = reward_report(GoldOracle(world), [], heldout, world, tmp_path, "cpu")
    assert metrics["heldout_pairs"] == 60      # the headline is the first set
    assert metrics["heldout_gold_accuracy"] == 1.0 and metrics["heldout_fact_gold_accuracy"] == 1.0
    assert metrics["textbook_pairs_correct"] == 6
    assert 0.8 < metrics["heldout_accuracy"] < 1.0     # the labels carry Bradley-Terry noise
    assert (tmp_path / "reliability.png").exists()


def test_more_ranked_answers_than_styles_is_a_config_error():
    from rlhf_lab.reward import RewardConfig
    from rlhf_lab.run import ConfigError
    with pytest.raises(ConfigError, match=r"--responses-per-prompt must be in \[2, 7\]; got 8"):
        RewardConfig(responses_per_prompt=8).validate()


def test_scoring_in_length_chunks_matches_one_padded_batch():
    from rlhf_lab.reward import score_texts
    model = tiny_reward_model().eval()
    prompts = ["Q?", "A much longer question, please?", "Mid-size question?", "Q2?", "Another one?"]
    responses = ["a", "b" * 20, "ccc", "d" * 12, "e" * 25]
    with torch.no_grad():
        whole = model(*encode_responses(BYTES, prompts, responses, "cpu"))
        chunked = score_texts(model, BYTES, prompts, responses, "cpu", chunk_tokens=60)
    assert torch.allclose(chunked, whole, atol=1e-5)


def test_sampled_broken_utf8_is_scored_within_the_context():
    """A response that filled the context as sampled bytes decodes to U+FFFD per broken byte,
    three bytes each when encoded again: scoring cuts it back to the context, EOS kept."""
    from rlhf_lab.reward import score_texts
    from rlhf_lab.rollout import decode_responses
    model = tiny_reward_model(likelihood_weight=1.0).eval()
    prompt = "Q?"
    room = TINY.context_len - len(BYTES.encode_prompt(prompt)) - 1        # what generate() may sample
    sampled = torch.full((1, room), 0xFF)                                       # never valid UTF-8
    text = decode_responses(BYTES, sampled, torch.ones_like(sampled, dtype=torch.bool))[0]
    assert len(BYTES.encode_pair(prompt, text)[0]) > TINY.context_len
    tokens, mask, start = encode_responses(BYTES, [prompt], [text], "cpu", TINY.context_len)
    assert tokens.shape[1] == TINY.context_len and tokens[0, -1] == tokenizer.EOS
    assert tokens[0, int(start):-1].tolist() == BYTES.encode(text)[:TINY.context_len - int(start) - 1]
    with torch.no_grad():
        score = score_texts(model, BYTES, [prompt], [text], "cpu", TINY.context_len)
        assert torch.allclose(score, model(tokens, mask, start))
    fits = "short answer"
    assert torch.equal(encode_responses(BYTES, [prompt], [fits], "cpu", TINY.context_len)[0],
                       encode_responses(BYTES, [prompt], [fits], "cpu")[0])


def test_eval_rm_labels_the_world_pairs_as_training_did(tmp_path, monkeypatch):
    from rlhf_lab import sft
    from rlhf_lab.reward import RewardConfig, RewardEvalConfig, eval_main, train_reward
    sft.train_sft(sft.SFTConfig(out=str(tmp_path / "sft"), steps=2, examples=16, batch_size=4, eval_every=2,
                                eval_samples=2, width=32, n_layers=1, n_heads=2, ffn=64, device="cpu"))
    trained = train_reward(RewardConfig(out=str(tmp_path / "rm"), sft=str(tmp_path / "sft"), pairs=84, batch_size=2,
                                        epochs=1, norm_samples=4, heldout_pairs=40, seed=3, label_temperature=0.0,
                                        length_bias=3.0, device="cpu"))
    evaluated = eval_main(RewardEvalConfig(rm=str(tmp_path / "rm"), device="cpu"))
    for key in ("heldout_accuracy", "heldout_template_accuracy", "heldout_fact_accuracy", "length_baseline_accuracy"):
        assert evaluated[key] == pytest.approx(trained[key]), key
    assert "by_subset" not in evaluated                          # the default names a key of files, not the world's
    per_style = eval_main(RewardEvalConfig(rm=str(tmp_path / "rm"), per="chosen_style", device="cpu"))
    assert set(per_style["by_chosen_style"]) <= set(STYLES)
    assert sum(f["pairs"] for f in per_style["by_chosen_style"].values()) == per_style["heldout_pairs"]

    def killed(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr("rlhf_lab.evaluate.reward_report", killed)
    with pytest.raises(KeyboardInterrupt):
        eval_main(RewardEvalConfig(rm=str(tmp_path / "rm"), per="rejected_style", device="cpu"))
    assert not {"config.json", "metrics.json"} & {f.name for f in (tmp_path / "rm" / "eval").iterdir()}


def test_an_epoch_trains_every_prompt_and_an_eval_file_of_other_prompts_gets_no_gold_figures(tmp_path):
    from rlhf_lab import sft
    from rlhf_lab.reward import RewardConfig, train_reward
    from rlhf_lab.run import read_log
    sft.train_sft(sft.SFTConfig(out=str(tmp_path / "sft"), steps=2, examples=16, batch_size=4, eval_every=2,
                                eval_samples=2, width=32, n_layers=1, n_heads=2, ffn=64, device="cpu"))
    other = tmp_path / "other.jsonl"      # not the world's prompts: its gold judge cannot score them
    other.write_text("".join(json.dumps({"prompt": f"Q{i}?", "chosen": "yes", "rejected": "no, no, no"}) + "\n"
                             for i in range(10)))
    metrics = train_reward(RewardConfig(out=str(tmp_path / "rm"), sft=str(tmp_path / "sft"), pairs=105,
                                        batch_size=2, epochs=1, norm_samples=4, eval_data=str(other), device="cpu"))
    assert metrics["heldout_pairs"] == 10 and "heldout_gold_accuracy" not in metrics
    assert read_log(tmp_path / "rm")[-1]["step"] == 3        # 5 ranked prompts in batches of 2: 2 + 2 + 1


def test_calibrating_on_the_world_holds_out_whole_training_prompts_and_fits_on_them(tmp_path):
    from rlhf_lab import sft
    from rlhf_lab.reward import RewardConfig, load_pairs, train_reward
    from rlhf_lab.world import STYLES, World
    cfg = RewardConfig(out=str(tmp_path / "rm"), sft=str(tmp_path / "sft"), calibrate=True, pairs=840,
                       batch_size=4, epochs=1, norm_samples=4, heldout_pairs=40, device="cpu")
    train, heldout, _ = load_pairs(cfg, World(), BYTES, 256)
    assert list(heldout) == ["heldout_prompt", "heldout_template", "heldout_fact", "validation"]   # headline first
    assert not {p.prompt for p in heldout["validation"]} & {p.prompt for p in train}
    assert len(heldout["validation"]) % 21 == 0 and 0 < len(heldout["validation"]) < len(train) / 3   # whole rankings
    sft.train_sft(sft.SFTConfig(out=str(tmp_path / "sft"), steps=2, examples=16, batch_size=4, eval_every=2,
                                eval_samples=2, width=32, n_layers=1, n_heads=2, ffn=64, device="cpu"))
    metrics = train_reward(cfg)
    assert metrics["calibration_temperature"] != 1.0 and "validation_gold_accuracy" in metrics


def test_a_file_without_eval_data_gives_the_reward_model_the_prompts_sft_held_out(tmp_path):
    """SFT on a preference file's chosen answers, then a reward model on its pairs: neither trains
    on the prompts the other holds out, so the reward model's validation pairs are unseen by both."""
    from rlhf_lab import sft
    from rlhf_lab.reward import RewardConfig, load_pairs
    path = tmp_path / "prefs.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"Question {i}?", "chosen": "Yes.", "rejected": "No, no."}) + "\n"
                            for i in range(400)))
    sft_train, sft_eval, _ = sft.load_data(sft.SFTConfig(data=str(path)), None, MiniGPT(GPTConfig()))
    rm_train, heldout, _ = load_pairs(RewardConfig(data=str(path)), None, BYTES, 256)
    assert {p.prompt for p in heldout["heldout"]} == {e.prompt for e in sft_eval}
    assert {p.prompt for p in rm_train} == {e.prompt for e in sft_train}
    assert 20 < len(heldout["heldout"]) < 60
    _, none, _ = load_pairs(RewardConfig(data=str(path), heldout_share=0.0), None, BYTES, 256)
    assert none == {}


def test_the_gain_over_the_length_rule_is_a_paired_difference_with_its_standard_error():
    from rlhf_lab.evaluate import beyond_length_baseline, length_baseline_accuracy
    pairs = [PreferencePair("q", "long answer", "short"), PreferencePair("q", "longer one", "no"),
             PreferencePair("q", "yes indeed", "nope"), PreferencePair("q", "ok", "too long an answer")]
    assert length_baseline_accuracy(pairs) == 0.75                       # "longer wins" on three of four
    gain, se = beyond_length_baseline(pairs, torch.ones(4), torch.zeros(4))   # the model right on all four
    assert gain == pytest.approx(0.25) and se == pytest.approx(0.25)    # differences 0, 0, 0, 1: std 0.5 / √4


def test_figures_per_subset_read_each_source_apart_with_its_own_length_rule():
    from rlhf_lab.evaluate import accuracy_per
    pairs = [PreferencePair("q", "long answer", "short", meta={"subset": "b"}),
             PreferencePair("q", "ok", "too long an answer", meta={"subset": "b"}),
             PreferencePair("q", "no", "yes indeed", meta={"subset": "a"}),
             PreferencePair("q", "x", "yy", meta={"subset": "a"}),
             PreferencePair("q", "unlabelled", "row")]                   # in the headline figures only
    chosen, rejected = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0]), torch.zeros(5)
    figures = accuracy_per("subset", pairs, chosen, rejected)
    assert list(figures) == ["a", "b"]
    assert figures["a"] == {"pairs": 2, "accuracy": 0.75, "length_baseline_accuracy": 1.0,   # "shorter wins" on a
                            "beyond_length_baseline": -0.25, "beyond_length_baseline_se": pytest.approx(0.25)}
    assert figures["b"]["accuracy"] == 1.0 and figures["b"]["length_baseline_accuracy"] == 0.5
    assert accuracy_per("category", pairs, chosen, rejected) == {}


def test_figures_per_value_leave_null_out_and_name_values_as_json_does():
    from rlhf_lab.evaluate import accuracy_per
    values = [1, 1.0, True, None, "a"]
    pairs = [PreferencePair("q", "a", "b", meta={"k": v}) for v in values]
    figures = accuracy_per("k", pairs, torch.ones(5), torch.zeros(5))
    assert {name: f["pairs"] for name, f in figures.items()} == {"1": 2, "true": 1, "a": 1}


def test_too_few_prompts_to_calibrate_on_advise_what_calibrate_allows():
    from rlhf_lab.reward import RewardConfig, load_pairs
    from rlhf_lab.run import ConfigError
    from rlhf_lab.world import annotated_world
    cfg = RewardConfig(pairs=21, calibrate=True)                 # one ranked prompt: none left to train on
    with pytest.raises(ConfigError, match="draw more --pairs$"):  # not --eval-data, which --calibrate refuses
        load_pairs(cfg, annotated_world(cfg), BYTES, 256)


def test_temperature_scaling_recovers_how_overconfident_the_margins_are_and_keeps_every_ordering():
    from rlhf_lab.reward import calibration_temperature
    torch.manual_seed(0)
    margins = torch.randn(20000) * 3                      # what the model says; the truth is σ(margin / 2.5)
    agree = torch.rand(20000) < torch.sigmoid(margins / 2.5)
    labelled = torch.where(agree, margins, -margins)      # r_chosen − r_rejected under the labels
    assert calibration_temperature(labelled) == pytest.approx(2.5, rel=0.05)
    assert calibration_temperature(torch.tensor([3.0, 2.0, 5.0])) == 1.0     # all right: no T minimises the loss
    model = tiny_reward_model(likelihood_weight=1.0).eval()
    tokens, mask, start = encode_responses(BYTES, ["Q?"] * 3, ["yes", "no", "maybe so"], "cpu")
    before = model(tokens, mask, start)
    model.temperature.fill_(2.0)
    assert torch.allclose(model(tokens, mask, start), before / 2)


def test_calibrate_needs_validation_pairs_of_its_training_data_not_the_file_it_is_judged_on():
    from rlhf_lab.reward import RewardConfig
    from rlhf_lab.run import ConfigError
    RewardConfig(data="a.jsonl", calibrate=True).validate()
    RewardConfig(calibrate=True).validate()                  # the world's training prompts
    for bad in (dict(heldout_share=0.0), dict(data="a.jsonl", eval_data="b.jsonl"),
                dict(data="a.jsonl", heldout_share=0.0)):
        with pytest.raises(ConfigError, match="--calibrate fits a temperature"):
            RewardConfig(calibrate=True, **bad).validate()


def test_a_file_of_pairs_refuses_the_worlds_annotators():
    """--length-bias with --data would bias nobody, yet be recorded as if it had."""
    from rlhf_lab.reward import RewardConfig
    from rlhf_lab.run import ConfigError
    with pytest.raises(ConfigError, match=r"--data a.jsonl brings its own examples; --length-bias shapes .* drop it$"):
        RewardConfig(data="a.jsonl", length_bias=1.0).validate()
    RewardConfig(length_bias=1.0, pairs=100).validate()


def test_a_train_state_saved_before_the_calibration_temperature_existed_still_resumes(tmp_path):
    from rlhf_lab.run import load_tensors, load_train_state, save_tensors, save_train_state, tensor_metadata
    saved, resumed = tiny_reward_model(seed=0), tiny_reward_model(seed=1)
    path = tmp_path / "train_state.safetensors"
    save_train_state(path, {"value": saved}, optim.adamw([saved], 1e-3, 0.0), step=3)
    older = {k: v for k, v in load_tensors(path).items() if k != "value.temperature"}
    save_tensors(path, older, tensor_metadata(path))
    assert load_train_state(path, {"value": resumed}, optim.adamw([resumed], 1e-3, 0.0)) == 3
    assert torch.equal(resumed.head.weight, saved.head.weight) and resumed.temperature.item() == 1.0


def test_a_tied_reward_is_half_right_in_calibration_and_in_gold_agreement():
    from rlhf_lab.evaluate import gold_accuracy
    ece, bins = expected_calibration_error(torch.zeros(4), torch.zeros(4))    # p = 0.5 everywhere: calibrated
    assert ece == 0.0 and bins == [(0.5, 0.5, 4)]

    class Judge:   # gold score: the answer's length
        def gold(self, prompt, response):
            return len(response)
    pairs = [PreferencePair("q", "long", "no"), PreferencePair("q", "yes", "no!")]   # the second: a gold tie
    assert gold_accuracy(Judge(), pairs, torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0])) == (0.5, 1)
    assert gold_accuracy(Judge(), pairs, torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.0])) == (1.0, 1)
    agreement, n = gold_accuracy(Judge(), pairs[1:], torch.zeros(1), torch.zeros(1))
    assert math.isnan(agreement) and n == 0                                   # nothing to agree on is not 0
