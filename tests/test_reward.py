import math

import pytest
import torch

from rlhf_lab import optim, tokenizer
from rlhf_lab.data import PreferencePair
from rlhf_lab.model import GPTConfig, MiniGPT
from rlhf_lab.reward import (RewardEnsemble, RewardModel, bradley_terry_loss, encode_responses, load_reward_model,
                             pair_rewards, pool, save_reward_model, score_pairs)
from rlhf_lab.evaluate import expected_calibration_error, pair_accuracy
from reference import assert_one_step_trains_all_but

TINY = GPTConfig(context_len=64, width=32, n_layers=2, n_heads=2, ffn=64)


def tiny_reward_model(seed=0, pooling="last"):
    torch.manual_seed(seed)
    return RewardModel(MiniGPT(TINY), pooling)


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


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_reward_does_not_depend_on_the_padding_of_its_batch(pooling):
    model = tiny_reward_model(pooling=pooling).eval()
    with torch.no_grad():
        alone = model(*encode_responses(["Q?"], ["short"], "cpu"))
        batched = model(*encode_responses(["Q?", "a much longer prompt here?"], ["short", "x" * 30], "cpu"))
        tokens, start = tokenizer.encode_pair("Q?", "short")
        left, mask = tokenizer.left_pad([tokens, tokens + [65] * 9])
        left_start = torch.tensor([start + 9, start])
        left_padded = model(left, mask, left_start)
    assert batched[0].item() == pytest.approx(alone.item(), abs=1e-5)
    assert left_padded[0].item() == pytest.approx(alone.item(), abs=1e-5)


def test_training_on_an_easy_separable_set_reaches_full_accuracy():
    model = tiny_reward_model()
    optimizer = optim.adamw([model], 3e-3, 0.0)
    pairs = [PreferencePair(f"Question {i}?", f"Yes {i}.", f"No, no, no {i}!") for i in range(32)]
    for _ in range(40):
        chosen, rejected = pair_rewards(model, pairs, "cpu")
        bradley_terry_loss(chosen, rejected).backward()
        optim.clip_and_step(optimizer, [model], 1.0)
    held_out = [PreferencePair(f"Question {i}?", f"Yes {i}.", f"No, no, no {i}!") for i in range(100, 120)]
    assert pair_accuracy(*score_pairs(model, held_out, "cpu")) == 1.0


def test_ensemble_conservative_score_and_round_trip(tmp_path):
    members = [tiny_reward_model(seed) for seed in (0, 1)]
    save_reward_model(tmp_path / "model.safetensors", members, std_coef=1.0)
    loaded = load_reward_model(tmp_path)
    assert isinstance(loaded, RewardEnsemble)
    batch = encode_responses(["Q?", "R?"], ["a", "bb"], "cpu")
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
