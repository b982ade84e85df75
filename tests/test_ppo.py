import pytest
import torch

from rlhf_lab.ppo import (AdaptiveKL, gae, leave_one_out_advantages, masked_whiten, ppo_policy_loss,
                          reward_baseline_advantages, shaped_rewards, value_loss)
from rlhf_lab.tokenizer import BYTES


def test_clipped_surrogate_equals_hand_computation():
    old = torch.zeros(1, 3)
    new = torch.log(torch.tensor([[1.5, 0.5, 1.1]]))    # ratios 1.5, 0.5, 1.1
    adv = torch.tensor([[1.0, -2.0, 3.0]])
    mask = torch.ones(1, 3)
    loss, clipfrac = ppo_policy_loss(new, old, adv, mask, clip_eps=0.2)
    # per token: max(-A r, -A clip(r)) = max(-1.5, -1.2), max(1.0, 1.6), max(-3.3, -3.3)
    assert loss.item() == pytest.approx((-1.2 + 1.6 - 3.3) / 3)
    assert clipfrac.item() == pytest.approx(2 / 3)


def test_masked_tokens_do_not_count():
    old = torch.zeros(1, 2)
    new = torch.tensor([[0.0, 5.0]])
    loss, _ = ppo_policy_loss(new, old, torch.tensor([[2.0, 100.0]]), torch.tensor([[1.0, 0.0]]), 0.2)
    assert loss.item() == pytest.approx(-2.0)


def test_clipped_value_loss_equals_hand_computation():
    values, old, returns = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.5]]), torch.tensor([[2.0, 0.5]])
    loss = value_loss(values, old, returns, torch.ones(1, 2), value_clip=0.2)
    # token 0: max((1-2)², (0.7-2)²) = 1.69 ; token 1: max((0-0.5)², (0.3-0.5)²) = 0.25
    assert loss.item() == pytest.approx(0.5 * (1.69 + 0.25) / 2)


def reference_gae(rewards, values, mask, gamma, lam):
    B, N = rewards.shape
    out = torch.zeros(B, N)
    for b in range(B):
        length = int(mask[b].sum())
        for t in range(length):
            total = 0.0
            for k in range(t, length):
                next_v = values[b, k + 1] if k + 1 < length else 0.0
                delta = rewards[b, k] + gamma * next_v - values[b, k]
                total += (gamma * lam) ** (k - t) * delta
            out[b, t] = total
    return out


def test_gae_equals_a_plain_reference_loop():
    torch.manual_seed(0)
    rewards, values = torch.randn(3, 6), torch.randn(3, 6)
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 1 + [0] * 5], dtype=torch.float)
    for gamma, lam in ((1.0, 0.95), (0.9, 0.5)):
        assert torch.allclose(gae(rewards * mask, values, mask, gamma, lam),
                              reference_gae(rewards * mask, values, mask, gamma, lam), atol=1e-5)


def test_kl_is_zero_when_policy_equals_reference():
    logprobs = torch.log(torch.rand(2, 5))
    mask = torch.ones(2, 5)
    rewards, kl = shaped_rewards(torch.tensor([1.0, -1.0]), logprobs, logprobs.clone(), mask, kl_coef=0.1)
    assert kl.abs().max().item() == 0.0
    assert rewards[:, :-1].abs().max().item() == 0.0 and rewards[:, -1].tolist() == [1.0, -1.0]


def test_score_lands_on_the_last_response_token_and_kl_is_charged_per_token():
    logprobs, ref = torch.zeros(1, 4), torch.full((1, 4), -0.5)
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    rewards, kl = shaped_rewards(torch.tensor([2.0]), logprobs, ref, mask, kl_coef=0.1)
    assert rewards[0].tolist() == pytest.approx([-0.05, -0.05, 2 - 0.05, 0.0])
    assert kl.sum().item() == pytest.approx(1.5)


def test_reward_baseline_gives_each_token_the_centered_return():
    adv = reward_baseline_advantages(torch.tensor([[0.0, 1.0, 0.0]]), 0.25, torch.tensor([[1.0, 1.0, 0.0]]))
    assert adv.tolist() == [[0.75, 0.75, 0.0]]


def test_leave_one_out_centres_each_answer_on_its_siblings_mean():
    # two prompts, three answers each; totals 3, 0, 0 | 1, 1, 4 (the second row's reward is split over two tokens)
    rewards = torch.tensor([[0.0, 3.0], [0.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.5, 0.5], [4.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    adv = leave_one_out_advantages(rewards, mask, group_size=3)
    expected = [3 - 0, 0 - 1.5, 0 - 1.5, 1 - 2.5, 1 - 2.5, 4 - 1]
    assert adv[:, 0].tolist() == expected
    assert adv[:5, 1].tolist() == expected[:5] and adv[5, 1].item() == 0.0    # padding gets none


def test_whitening_gives_mean_zero_unit_variance_over_the_mask():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    w = masked_whiten(x, mask)
    assert w[0, :3].mean().item() == pytest.approx(0.0, abs=1e-6)
    assert (w[0, :3] ** 2).mean().item() == pytest.approx(1.0, abs=1e-4)
    assert w[0, 3].item() == 0.0


def test_adaptive_kl_moves_beta_toward_the_target():
    above, below = AdaptiveKL(0.1, target=6.0, horizon=100), AdaptiveKL(0.1, target=6.0, horizon=100)
    above.update(kl=12.0, episodes=10)   # error clipped to +0.2 → β × 1.02
    below.update(kl=3.0, episodes=10)    # error -0.5 clipped to -0.2 → β × 0.98
    assert above.value == pytest.approx(0.102) and below.value == pytest.approx(0.098)


def test_length_chunks_give_the_same_log_probs_values_and_scores_as_the_whole_batch():
    from functools import partial
    from rlhf_lab.model import GPTConfig, MiniGPT, SamplingConfig, token_logprobs
    from rlhf_lab.ppo import by_length, model_reward, response_values, with_eos
    from rlhf_lab.reward import RewardModel
    from rlhf_lab.rollout import length_chunks, rollout
    torch.manual_seed(0)
    tiny = GPTConfig(context_len=96, width=32, n_layers=2, n_heads=2, ffn=64)
    policy, critic = MiniGPT(tiny).eval(), RewardModel(MiniGPT(tiny)).eval()
    prompts = ["Hi?", "What is the capital of a rather long-named country?", "2+2?", "Name three colors."] * 3
    r = rollout(policy, prompts, SamplingConfig(max_new_tokens=24), torch.Generator().manual_seed(0))
    assert len(length_chunks(r.mask, 200)) > 2                            # the small budget really splits
    with torch.no_grad():
        whole_lp, whole_entropy = token_logprobs(policy, r.tokens, r.mask, r.prompt_len)
        lp, entropy = by_length(partial(token_logprobs, policy), r, chunk_tokens=200)
        whole_values, = response_values(critic, r.tokens, r.mask, r.prompt_len)
        values, = by_length(partial(response_values, critic), r, chunk_tokens=200)
        start = torch.full((len(prompts),), r.prompt_len)
        ended = with_eos(r)
        whole_scores = critic.score(ended.tokens, ended.mask, start)
        scores = model_reward(critic)(r)
    on = r.response_mask
    for chunked, whole in ((lp, whole_lp), (entropy, whole_entropy), (values, whole_values)):
        assert torch.allclose(chunked[on], whole[on], atol=1e-5)         # off the mask: padding, unused
    assert torch.allclose(scores, whole_scores, atol=1e-5)


def test_ppo_scores_a_cut_off_answer_as_evaluation_does_with_eos_appended():
    from rlhf_lab.model import GPTConfig, MiniGPT
    from rlhf_lab.ppo import model_reward
    from rlhf_lab.reward import RewardModel, score_texts
    from rlhf_lab.rollout import Rollout, encode_prompts
    torch.manual_seed(0)
    tiny = GPTConfig(context_len=96, width=32, n_layers=2, n_heads=2, ffn=64)
    reward_model = RewardModel(MiniGPT(tiny), likelihood_weight=1.0).eval()
    prompts = ["Hi?", "What is the capital of France?", "2+2?"]
    responses = ["It is Paris", "Four", "Yes, yes, y"]       # "Four": cut by a tighter limit than the others
    prompt_tokens, prompt_mask = encode_prompts(BYTES, prompts, "cpu")           # left-padded (B, P)
    answer, answer_mask = BYTES.right_pad([list(t.encode()) for t in responses])  # (B, 11), no EOS: cut
    r = Rollout(prompts, responses, torch.cat([prompt_tokens, answer], 1), torch.cat([prompt_mask, answer_mask], 1),
                answer_mask, prompt_tokens.shape[1], BYTES.eos)
    assert not r.ended.any()
    with torch.no_grad():
        in_ppo = model_reward(reward_model)(r)
        in_eval = score_texts(reward_model.score, BYTES, prompts, responses, "cpu")    # re-encoded with EOS
    assert torch.allclose(in_ppo, in_eval, atol=1e-5)


def test_adaptive_kl_counts_the_episodes_of_every_rank(monkeypatch):
    from rlhf_lab import distributed
    from rlhf_lab.ppo import PPOConfig, iteration_episodes
    cfg = PPOConfig(batch_size=64)
    assert iteration_episodes(cfg) == 64
    monkeypatch.setattr(distributed, "world_size", lambda: 4)   # torchrun: each rank samples its own 64
    assert iteration_episodes(cfg) == 256


def test_whitening_keeps_the_running_baseline_of_the_textbook_estimator():
    from rlhf_lab.model import GPTConfig, MiniGPT, SamplingConfig
    from rlhf_lab.ppo import PPOConfig, score_batch
    from rlhf_lab.rollout import rollout
    torch.manual_seed(0)
    policy = MiniGPT(GPTConfig(context_len=64, width=32, n_layers=1, n_heads=2, ffn=64)).eval()
    r = rollout(policy, ["Hi?", "2+2?", "Name a colour."], SamplingConfig(max_new_tokens=8),
                torch.Generator().manual_seed(0))
    cfg = PPOConfig(advantage="baseline", batch_size=3, minibatch_size=3, eos_penalty=0.0)
    scores = lambda rollout: torch.tensor([1.0, 2.0, 4.0])
    below, above = (score_batch(policy, None, scores, r, cfg, 0.0, baseline).advantages for baseline in (0.0, 5.0))
    on = r.response_mask
    assert (below[on] > 0).all() and (above[on] < 0).all()   # every score beats 0 and misses 5: the baseline decides
    with_gae_whitening = masked_whiten(below, on.float())
    assert not (with_gae_whitening[on] > 0).all()             # re-centring on the batch mean would have cancelled it


def test_whitening_without_recentring_only_scales_and_stays_bounded():
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    same = masked_whiten(torch.full((2, 3), 0.5), mask, shift_mean=False)
    assert torch.allclose(same, mask)                         # every answer earned alike: not divided by a zero spread
    x = torch.tensor([[1.0, -3.0, 9.0], [2.0, -4.0, 6.0]])
    w = masked_whiten(x, mask, shift_mean=False)
    assert torch.allclose(w, x * mask / (x[mask.bool()] ** 2).mean().sqrt())    # signs kept, root mean square 1
