import pytest
import torch
from reference import TINY

from rlhf_lab import cli
from rlhf_lab.evaluate import proxy_scores
from rlhf_lab.model import MiniGPT
from rlhf_lab.reward import RewardModel, load_reward_model, save_reward_model
from rlhf_lab.run import ConfigError, save_model
from rlhf_lab.sample import HELDOUT_EXAMPLES, SampleConfig, sample_answers
from rlhf_lab.world import World, WorldConfig

FOREIGN = "Why is the sky blue?"


@pytest.fixture
def tiny_runs(tmp_path):
    torch.manual_seed(0)
    save_model(tmp_path / "a" / "model.safetensors", MiniGPT(TINY))
    save_model(tmp_path / "b" / "model.safetensors", MiniGPT(TINY))
    save_reward_model(tmp_path / "rm" / "model.safetensors", [RewardModel(MiniGPT(TINY))], 0.0)
    return tmp_path


def test_the_default_prompts_are_held_out_prompts_of_the_default_world():
    assert set(HELDOUT_EXAMPLES) <= set(World(WorldConfig()).prompts("heldout_prompt"))


def test_every_model_answers_every_prompt_judged_by_gold_where_the_world_knows_it(tiny_runs):
    world, models = World(WorldConfig()), [str(tiny_runs / "a"), str(tiny_runs / "b")]
    prompts = [HELDOUT_EXAMPLES[0], FOREIGN]
    cfg = SampleConfig(prompts=prompts, models=models, rm=str(tiny_runs / "rm"), samples=2, max_new_tokens=12,
                       device="cpu")
    answers = sample_answers(cfg)
    assert [(a.prompt, a.model) for a in answers] == [(p, m) for p in prompts for m in models for _ in range(2)]
    for a in answers:
        if a.prompt == FOREIGN:
            assert a.gold is None and a.style is None
        else:
            verdict = world.judge(a.prompt, a.text, a.finished)
            assert (a.gold, a.style) == (verdict.score, verdict.style)
    reward_model = load_reward_model(tiny_runs / "rm").eval()
    expected = proxy_scores(reward_model, [a.prompt for a in answers], [a.text for a in answers], "cpu")
    assert [a.reward for a in answers] == pytest.approx(expected.tolist(), abs=1e-5)


def test_one_model_named_twice_gives_the_same_answers_the_seed_is_shared(tiny_runs):
    cfg = SampleConfig(prompts=[FOREIGN], models=[str(tiny_runs / "a")] * 2, samples=3, max_new_tokens=16,
                       device="cpu")
    texts = [a.text for a in sample_answers(cfg)]
    assert texts[:3] == texts[3:] and len(set(texts[:3])) > 1      # sampled: different answers, same draw


def test_the_shipped_checkpoint_answers_a_training_prompt_greedily_and_correctly():
    world = World(WorldConfig())
    prompt = world.prompts("train")[0]
    (answer,) = sample_answers(SampleConfig(prompts=[prompt], temperature=0, device="cpu"))
    assert answer.model == "shipped" and answer.finished and answer.gold == 1.0 and answer.style == "ideal"


@pytest.mark.parametrize("change, message", [
    ({"prompts": ["x" * 63]}, "leave no room for an answer in the 64-token context"),
    ({"prompts": ["  "]}, "non-empty prompts"),
    ({"models": ["no/such/run"]}, "--models no/such/run: no such run directory"),
    ({"top_p": 0.0}, r"--top-p must be in \(0, 1\], 1 turning it off; got 0.0"),
    ({"top_p": 1.5}, r"--top-p must be in \(0, 1\], 1 turning it off; got 1.5"),
    ({"temperature": 0.0, "samples": 3}, "--samples asks for more answers per prompt, and at --temperature 0 each"),
    ({"temperature": float("inf")}, "--temperature must be a finite number; got inf"),
    ({"seed": 10 ** 23}, r"--seed must be in \[0, 2\*\*32\)"),
])
def test_bad_requests_are_one_clear_line(tiny_runs, change, message):
    cfg = SampleConfig(**{"models": [str(tiny_runs / "a")], "device": "cpu", **change})
    with pytest.raises(ConfigError, match=message):
        sample_answers(cfg)


def test_a_prompt_that_leaves_the_reward_model_no_room_is_one_clear_line(tiny_runs):
    import dataclasses
    short = dataclasses.replace(TINY, context_len=32)
    save_reward_model(tiny_runs / "rm32" / "model.safetensors", [RewardModel(MiniGPT(short))], 0.0)
    cfg = SampleConfig(prompts=["x" * 40], models=[str(tiny_runs / "a")], rm=str(tiny_runs / "rm32"), device="cpu")
    with pytest.raises(ConfigError, match=f"32-token context of {tiny_runs / 'rm32'}"):
        sample_answers(cfg)


def test_the_command_prints_each_prompt_with_its_answers(tiny_runs, capsys):
    argv = ["sample", "--models", str(tiny_runs / "a"), "--prompts", FOREIGN, "--max-new-tokens", "8",
            "--device", "cpu"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert f"prompt: {FOREIGN}" in out and f"[{tiny_runs / 'a'}]" in out and "no gold score" in out


def test_a_cut_answer_names_the_limit_that_cut_it(tiny_runs):
    import dataclasses
    from rlhf_lab.sample import describe
    cfg = SampleConfig(prompts=["x" * 50, FOREIGN], models=[str(tiny_runs / "a")], samples=4, max_new_tokens=8,
                       device="cpu")            # BOS, 50 bytes and SEP leave 64 - 52 - 1 = 11 tokens: more than 8
    cut = {a.prompt: describe(a) for a in sample_answers(cfg) if not a.finished}
    assert cut == {"x" * 50: "cut at --max-new-tokens", FOREIGN: "cut at --max-new-tokens"}
    long = dataclasses.replace(cfg, prompts=["x" * 58])           # 3 tokens of room: the context cuts first
    assert {describe(a) for a in sample_answers(long)} == {"cut at the end of the model's 64-token context"}
