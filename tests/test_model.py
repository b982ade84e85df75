import pytest
import torch
import torch.nn.functional as F

from rlhf_lab import tokenizer
from rlhf_lab.model import MiniGPT, SamplingConfig, draw, filter_logits, generate, positions_from_mask, token_logprobs
from rlhf_lab.tokenizer import BYTES
from reference import TINY, assert_cached_greedy_equals_uncached



@pytest.fixture
def model():
    torch.manual_seed(0)
    return MiniGPT(TINY).eval()


def test_changing_a_future_token_leaves_earlier_logits_unchanged(model):
    tokens = torch.randint(0, 256, (2, 20))
    changed = tokens.clone()
    changed[:, 12] = (changed[:, 12] + 1) % 256
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    assert torch.allclose(a[:, :12], b[:, :12], atol=1e-6)
    assert not torch.allclose(a[:, 12:], b[:, 12:])


def test_cached_greedy_generation_equals_uncached(model):
    assert_cached_greedy_equals_uncached(model, lambda m, tokens, mask: m(tokens, mask))


def test_cached_greedy_generation_equals_uncached_without_padding(model):
    # prompts of one length take the unmasked attention paths, prefill and decode
    assert_cached_greedy_equals_uncached(model, lambda m, tokens, mask: m(tokens, mask), texts=("abcd", "wxyz"))


def test_logprobs_equal_a_direct_computation(model):
    tokens = torch.randint(0, 256, (3, 10))
    mask = torch.ones_like(tokens, dtype=torch.bool)
    logprobs, entropy = token_logprobs(model, tokens, mask, start=4)
    with torch.no_grad():
        logits = model(tokens)
    for b in range(3):
        for t in range(4, 10):
            p = F.log_softmax(logits[b, t - 1], -1)
            assert logprobs[b, t - 4].item() == pytest.approx(p[tokens[b, t]].item(), abs=1e-5)
            assert entropy[b, t - 4].item() == pytest.approx(-(p.exp() * p).sum().item(), abs=1e-4)


@pytest.mark.parametrize("padding", ["right", "left"])
def test_outputs_from_skips_columns_without_changing_the_rest(model, padding):
    # right padding takes SDPA's unmasked causal path, left padding the masked one
    rows = [BYTES.encode_pair("What is 2+2?", "4")[0], BYTES.encode_pair("Name a colour.", "Red.")[0]]
    tokens, mask = (BYTES.right_pad if padding == "right" else BYTES.left_pad)(rows)
    positions = positions_from_mask(mask)
    with torch.no_grad():
        whole = model.trunk(tokens, positions, mask)
        for first in (1, 5, tokens.shape[1] - 1):
            part = model.trunk(tokens, positions, mask, outputs_from=first)
            assert part.shape == (2, tokens.shape[1] - first, TINY.width)
            assert torch.allclose(part, whole[:, first:], atol=1e-5)


def test_outputs_from_on_a_cache_prefill_leaves_the_same_keys_and_values(model):
    tokens = torch.randint(0, 256, (2, 9))
    mask = torch.ones_like(tokens, dtype=torch.bool)
    full, last = model.new_cache(2, 9), model.new_cache(2, 9)
    with torch.no_grad():
        whole = model.trunk(tokens, positions_from_mask(mask), mask, full)
        part = model.trunk(tokens, positions_from_mask(mask), mask, last, outputs_from=8)
    assert torch.allclose(part, whole[:, 8:], atol=1e-5)
    assert torch.equal(full.keys, last.keys) and torch.equal(full.values, last.values) and last.length == 9


def test_left_padding_does_not_change_results(model):
    row = BYTES.encode_pair("What is 2+2?", "4")[0]
    alone, alone_mask = BYTES.left_pad([row])
    padded, padded_mask = BYTES.left_pad([row, row + [65] * 7])
    with torch.no_grad():
        a = model(alone, alone_mask)[0]
        b = model(padded, padded_mask)[0, 7:]
    assert torch.allclose(a, b, atol=1e-5)


def test_generation_stops_each_row_at_its_eos():
    from rlhf_lab.run import SHIPPED_SFT, load_model
    sft = load_model(SHIPPED_SFT).eval()             # answers end in EOS, at lengths of their own
    prompts, mask = BYTES.left_pad([BYTES.encode_prompt("What is the capital of France?"),
                                        BYTES.encode_prompt("Name three programming languages.")])
    out, response_mask = generate(sft, prompts, mask, SamplingConfig(temperature=0))[:2]
    ends = []
    for row, m in zip(out, response_mask):
        (first,) = (row == tokenizer.EOS).nonzero()[:, 0].tolist()     # exactly one EOS per row
        assert m[:first + 1].all() and not m[first + 1:].any()
        assert (row[first + 1:] == tokenizer.PAD).all()
        ends.append(first)
    assert ends[0] != ends[1] and max(ends) == out.shape[1] - 1          # one row ran on after the other stopped


def test_sampled_log_probs_are_the_models_own_on_the_drawn_tokens():
    """PPO takes its old log-probs from the sampler: they must be token_logprobs of the
    same tokens, also under top-k (which changes what is drawn, not the model's
    distribution), on left-padded prompts and rows that stop early."""
    from rlhf_lab.rollout import rollout
    from rlhf_lab.run import SHIPPED_SFT, load_model
    sft = load_model(SHIPPED_SFT).eval()
    prompts = ["What is the capital of France?", "Name three programming languages.", "2+2?"]
    r = rollout(sft, prompts, SamplingConfig(top_k=20), torch.Generator().manual_seed(0))
    lengths = r.response_mask.sum(-1)
    assert lengths.min() < lengths.max() and r.ended.all()             # rows stopped at EOS, apart
    with torch.no_grad():
        logprobs, entropy = token_logprobs(sft, r.tokens, r.mask, r.prompt_len)   # (B, N)
    on = r.response_mask
    assert torch.allclose(r.logprobs[on], logprobs[on], atol=1e-4)      # float rounding only; top-k's would be ≫
    assert torch.allclose(r.entropy[on], entropy[on], atol=1e-4)
    assert (r.logprobs[~on] == 0).all() and (r.entropy[~on] == 0).all()


def test_top_k_and_top_p_keep_only_the_head_of_the_distribution():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept_k = filter_logits(logits, SamplingConfig(top_k=2)).isfinite()
    kept_p = filter_logits(logits, SamplingConfig(top_p=0.7)).isfinite()
    assert kept_k.tolist() == [[True, True, False, False]]
    assert kept_p.tolist() == [[True, True, False, False]]


def test_draw_samples_the_distribution_and_never_a_token_of_probability_zero():
    probs = torch.tensor([0.0, 0.5, 0.0, 0.2, 0.3, 0.0]).expand(20000, 6)   # zeros inside and at the end
    counts = torch.bincount(draw(probs, torch.Generator().manual_seed(0)), minlength=6)
    assert counts[[0, 2, 5]].sum() == 0
    assert torch.allclose(counts / 20000, probs[0], atol=0.015)              # 4 standard errors at p = 0.5


def test_draw_of_a_uniform_that_rounds_up_to_the_total_is_the_last_possible_token(monkeypatch):
    monkeypatch.setattr(torch, "rand", lambda shape, **kw: torch.ones(shape, dtype=kw.get("dtype")))
    assert draw(torch.tensor([[0.25, 0.75, 0.0, 0.0]])).tolist() == [1]     # not the zero-probability 3


def test_generation_leaves_room_for_the_eos_an_unfinished_response_gets_when_re_encoded():
    from rlhf_lab.rollout import encode_prompts
    torch.manual_seed(0)                                           # an untrained model, sampled to the limit
    model = MiniGPT(TINY)
    prompts, mask = encode_prompts(BYTES, ["x" * 50], "cpu")          # BOS + 50 + SEP = 52 of 64 positions
    responses = generate(model, prompts, mask, SamplingConfig(max_new_tokens=100)).tokens
    assert prompts.shape[1] + responses.shape[1] + 1 == 64


def test_a_long_prompt_does_not_cut_the_answers_batched_with_it(model):
    from rlhf_lab.rollout import encode_prompts
    greedy = SamplingConfig(max_new_tokens=40, temperature=0)
    alone, alone_mask = generate(model, *encode_prompts(BYTES, ["a"], "cpu"), greedy)[:2]         # 3 prompt tokens of 64
    batched, batched_mask = generate(model, *encode_prompts(BYTES, ["a", "x" * 50], "cpu"), greedy)[:2]
    assert alone_mask.sum() == 40 and torch.equal(batched[0, :40], alone[0])
    assert batched_mask[0].sum() == 40 and batched_mask[1].sum() <= 64 - 52 - 1    # each row: its own room


def test_prompts_that_fill_the_context_are_a_clear_error(model):
    full = torch.randint(0, 256, (2, model.config.context_len))
    with pytest.raises(ValueError, match="no room to generate"):
        generate(model, full, torch.ones_like(full, dtype=torch.bool), SamplingConfig(max_new_tokens=4))
