import pytest

pytest.importorskip("transformers")

import torch
import torch.nn.functional as F

from rlhf_lab import hf, run, tokenizer
from rlhf_lab.model import positions_from_mask, token_logprobs
from rlhf_lab.data import PreferencePair
from rlhf_lab.reward import RewardModel, bradley_terry_loss, pair_rewards
from reference import TINY, assert_cached_greedy_equals_uncached, assert_one_step_trains_all_but



@pytest.fixture
def model():
    """Weights drawn at std 0.3: at GPT-2's init (0.02) attention is near uniform and
    greedy decoding repeats tokens, which would hide a padding or cache bug."""
    torch.manual_seed(0)
    model = hf.tiny_gpt2(TINY).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model


def logits(model, tokens, mask):
    """Our path: trunk + lm_head, positions that skip left padding."""
    return model.lm_head(model.trunk(tokens, positions_from_mask(mask), mask))


def test_config_is_read_from_the_hf_config(model):
    assert model.config == TINY


def test_logits_equal_the_hf_models_own_without_padding(model):
    tokens = torch.randint(0, 256, (2, 12))
    mask = torch.ones_like(tokens, dtype=torch.bool)
    with torch.no_grad():
        assert torch.allclose(logits(model, tokens, mask), model.hf(tokens).logits, atol=1e-5)


def test_logits_equal_the_hf_models_own_with_left_padding(model):
    rows = [tokenizer.encode_pair("What is 2+2?", "4")[0], tokenizer.encode_pair("Hi", "hello")[0]]
    tokens, mask = tokenizer.left_pad(rows)
    with torch.no_grad():
        ours = logits(model, tokens, mask)
        theirs = model.hf(tokens, attention_mask=mask.long(), position_ids=positions_from_mask(mask)).logits
        alone = model.hf(torch.tensor([rows[1]])).logits[0]
    assert torch.allclose(ours[mask], theirs[mask], atol=1e-5)
    assert torch.allclose(ours[1, -len(rows[1]):], alone, atol=1e-5)   # padding changes nothing


def test_cached_greedy_generation_equals_uncached(model):
    out = assert_cached_greedy_equals_uncached(model, logits)
    assert out.shape[1] == 15


def test_logprobs_equal_a_log_softmax_of_the_hf_logits(model):
    tokens = torch.randint(0, 256, (3, 10))
    mask = torch.ones_like(tokens, dtype=torch.bool)
    logprobs, entropy = token_logprobs(model, tokens, mask, start=4)
    with torch.no_grad():
        logp = F.log_softmax(model.hf(tokens).logits[:, 3:-1], -1)            # (B, 6, V)
    assert torch.allclose(logprobs, logp.gather(-1, tokens[:, 4:, None]).squeeze(-1), atol=1e-5)
    assert torch.allclose(entropy, -(logp.exp() * logp).sum(-1), atol=1e-4)


def test_reward_model_on_an_hf_backbone_trains_every_parameter():
    torch.manual_seed(0)
    assert_one_step_trains_all_but(RewardModel(hf.tiny_gpt2(TINY)), {"head.bias", "backbone.hf.transformer.ln_f.bias"})


def test_likelihood_read_out_on_an_hf_backbone_reaches_every_parameter():
    torch.manual_seed(0)
    model = RewardModel(hf.tiny_gpt2(TINY), likelihood_weight=5.0)
    torch.nn.init.normal_(model.likelihood_gate.weight, std=0.5)   # see test_reward: an open gate's bias is idle
    pairs = [PreferencePair("Q?", "good answer", "bad"), PreferencePair("R?", "fine", "worse answer")]
    bradley_terry_loss(*pair_rewards(model, pairs, "cpu")).backward()
    idle = {k for k, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0}
    # through the LM head the final LayerNorm's bias learns too; the head's bias cancels in r_c − r_r
    assert idle <= {"head.bias"}


def test_save_pretrained_then_load_model_round_trips(model, tmp_path):
    model.hf.save_pretrained(tmp_path)
    loaded = run.load_model(tmp_path)
    assert isinstance(loaded, hf.HFCausalLM)
    assert loaded.config == model.config
    tokens, mask = tokenizer.left_pad([tokenizer.encode_prompt("Hi"), tokenizer.encode_prompt("Hello")])
    with torch.no_grad():
        assert torch.equal(logits(loaded.eval(), tokens, mask), logits(model, tokens, mask))
