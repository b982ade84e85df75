"""The benchmark's own side at tiny sizes: the same code paths `python -m benchmarks.run` times,
so a change to a stage's functions cannot break the benchmark unseen."""
import pytest

from benchmarks import ours


def test_reward_model_training_is_timed():
    figures = ours.reward_pairs_per_sec(batch_size=2, min_len=8, max_len=16, steps=1, warmup=1)
    assert figures["pairs_per_sec"] > 0 and figures["gflops_per_sec"] > 0


@pytest.mark.parametrize("critic", [True, False])
def test_a_ppo_iteration_is_timed_with_and_without_a_critic(critic):
    figures = ours.ppo_episodes_per_sec(batch_size=4, response_length=4, ppo_epochs=1, iterations=1, warmup=1,
                                        critic=critic)
    assert figures["episodes_per_sec"] > 0 and figures["gflops_per_sec"] > 0


def test_sampling_is_timed():
    figures = ours.sampling_tokens_per_sec(batch_size=2, new_tokens=4, prompt_len=8, repeats=1)
    assert figures["new_tokens_per_sec"] > 0 and figures["gflops_per_sec"] > 0
