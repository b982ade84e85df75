"""Slow, obviously-correct references the fast paths are checked against."""
import torch

from rlhf_lab import optim
from rlhf_lab.data import PreferencePair
from rlhf_lab.model import GPTConfig, SamplingConfig, generate
from rlhf_lab.reward import bradley_terry_loss, pair_rewards
from rlhf_lab.tokenizer import BYTES

TINY = GPTConfig(context_len=64, width=32, n_layers=2, n_heads=2, ffn=64)   # the tests' model: trains in ms


def assert_cached_greedy_equals_uncached(model, logits_fn, steps=15, texts=("capital?", "2+2")):
    """generate() with its KV cache against rerunning the whole sequence per token.
    logits_fn(model, tokens, mask) → (B, T, V) without any cache."""
    prompts, mask = BYTES.left_pad([BYTES.encode_prompt(p) for p in texts])
    device = next(model.parameters()).device
    prompts, mask = prompts.to(device), mask.to(device)
    out, response_mask = generate(model, prompts, mask, SamplingConfig(max_new_tokens=steps, temperature=0))[:2]
    tokens, full_mask = prompts, mask
    for _ in range(out.shape[1]):
        with torch.no_grad():
            next_logits = logits_fn(model, tokens, full_mask)[:, -1]
        next_logits[:, BYTES.never_sampled] = float("-inf")
        tokens = torch.cat([tokens, next_logits.argmax(-1, keepdim=True)], 1)
        full_mask = torch.cat([full_mask, torch.ones_like(full_mask[:, :1])], 1)
    expected = tokens[:, prompts.shape[1]:]
    assert torch.equal(out[response_mask], expected[response_mask])
    return out


def assert_one_step_trains_all_but(model, shift_only: set[str]):
    """After one Bradley-Terry step every parameter has a gradient and has changed,
    except those in shift_only: a constant added to every reward cancels in r_c − r_r,
    so their gradient is zero up to float rounding (AdamW's normalised step can still
    move them by rounding noise, so only the others are required to change)."""
    before = {k: v.clone() for k, v in model.named_parameters()}
    optimizer = optim.adamw([model], 1e-3, 0.0)
    pairs = [PreferencePair("Q?", "good answer", "bad"), PreferencePair("R?", "fine", "worse answer")]
    chosen, rejected = pair_rewards(model, BYTES, pairs, "cpu")
    bradley_terry_loss(chosen, rejected).backward()
    missing = [k for k, p in model.named_parameters() if p.grad is None or not p.grad.abs().max() > 1e-6]
    assert set(missing) == shift_only
    optimizer.step()
    unchanged = [k for k, p in model.named_parameters() if torch.equal(p, before[k])]
    assert set(unchanged) <= shift_only
