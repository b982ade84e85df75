"""End to end on the assistant world: tiny sizes in CI, full sizes marked slow."""
import json
import math
import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rlhf_lab import cli, pipeline, ppo
from rlhf_lab.model import SamplingConfig, positions_from_mask
from rlhf_lab.rollout import Rollout, encode_prompts, response_texts, sample_rollouts, sample_texts
from rlhf_lab.run import SHIPPED_SFT, ConfigError, load_model, tensor_metadata
from rlhf_lab.world import World
from rlhf_lab.tokenizer import BYTES


def first_byte_probability(model, prompts, byte):
    tokens, mask = encode_prompts(BYTES, prompts, "cpu")
    with torch.no_grad():
        hidden = model.trunk(tokens, positions_from_mask(mask), mask)
        return model.lm_head(hidden[:, -1]).softmax(-1)[:, byte].mean().item()


def starts_with(byte):
    def reward(r: Rollout):
        return torch.tensor([1.0 if text.encode()[:1] == bytes([byte]) else 0.0 for text in r.responses])
    return reward


@pytest.mark.parametrize("precision, advantage, samples_per_prompt", [
    ("fp32", "gae", 1), ("bf16", "gae", 1),     # bf16: the GPU default, same code path on CPU
    ("fp32", "rloo", 4)])
def test_a_few_ppo_steps_raise_the_rewarded_first_byte(tmp_path, precision, advantage, samples_per_prompt):
    prompts = World().prompts("heldout_template")[:64]
    before = first_byte_probability(load_model(SHIPPED_SFT), prompts, ord("#"))
    cfg = ppo.PPOConfig(out=str(tmp_path / "ppo"), iterations=4, batch_size=32, minibatch_size=16,
                        lr=3e-4, max_new_tokens=48, eos_penalty=0.0, kl_coef=0.0, device="cpu",
                        precision=precision, advantage=advantage, samples_per_prompt=samples_per_prompt)
    ppo.train_ppo(cfg, reward_fn=starts_with(ord("#")))
    after = first_byte_probability(load_model(tmp_path / "ppo"), prompts, ord("#"))
    assert after > before + 0.05, (before, after)


def tiny_ppo(out, **kw):
    return ppo.PPOConfig(out=str(out), iterations=2, batch_size=16, minibatch_size=8, max_new_tokens=32,
                         device="cpu", **kw)


def test_two_runs_with_one_seed_give_identical_metrics(tmp_path):
    for name in ("a", "b"):
        ppo.train_ppo(tiny_ppo(tmp_path / name), reward_fn=starts_with(ord("T")))
    logs = [(tmp_path / n / "metrics.jsonl").read_text().splitlines() for n in ("a", "b")]
    strip = [[{k: v for k, v in json.loads(line).items() if not k.startswith("ms_")} for line in log] for log in logs]
    assert strip[0] == strip[1]


@pytest.mark.parametrize("advantage, samples_per_prompt", [("rloo", 4), ("baseline", 1)])
def test_a_critic_free_run_trains_and_saves_no_critic(tmp_path, advantage, samples_per_prompt):
    cfg = tiny_ppo(tmp_path / "ppo", advantage=advantage, samples_per_prompt=samples_per_prompt, eval_every=1)
    ppo.train_ppo(cfg, reward_fn=starts_with(ord("T")))
    logged = json.loads((tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines()[-1])
    assert "ppo/policy_loss" in logged and not {"ppo/value_loss", "ppo/explained_variance"} & logged.keys()
    saved = load_file(str(tmp_path / "ppo" / "train_state.safetensors"))
    assert any(k.startswith("policy.") for k in saved) and not any(k.startswith("value.") for k in saved)


def test_rloo_answers_each_drawn_prompt_k_times_in_a_row(tmp_path):
    ppo.train_ppo(tiny_ppo(tmp_path / "ppo", advantage="rloo", samples_per_prompt=4), reward_fn=starts_with(ord("T")))
    prompts = [s["prompt"] for s in json.loads((tmp_path / "ppo" / "samples.json").read_text())]
    groups = [prompts[i:i + 4] for i in range(0, len(prompts), 4)]
    assert len(groups) == 4 and all(len(set(g)) == 1 for g in groups)


def test_ppo_trains_on_a_prompts_file_and_logs_no_gold_for_prompts_the_world_does_not_know(tmp_path):
    asked = ["Tell me a joke.", "How do I boil an egg?", "What is a byte?"]
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "id": i}) + "\n" for i, p in enumerate(asked)))
    ppo.train_ppo(tiny_ppo(tmp_path / "ppo", prompts=str(path)), reward_fn=starts_with(ord("T")))
    sampled = {s["prompt"] for s in json.loads((tmp_path / "ppo" / "samples.json").read_text())}
    assert sampled <= set(asked)
    logged = json.loads((tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines()[-1])
    assert "ppo/score" in logged and not any(k.startswith(("ppo/gold", "ppo/style")) for k in logged)
    assert json.loads((tmp_path / "ppo" / "metrics.json").read_text())["data_files"][str(path)]["rows_loaded"] == 3


def killed_after(calls_allowed, reward):
    """A reward function that dies on a later call, as a killed process would."""
    calls = []

    def fn(r):
        calls.append(1)
        if len(calls) > calls_allowed:
            raise KeyboardInterrupt
        return reward(r)
    return fn


@pytest.mark.parametrize("estimator", [{}, dict(advantage="rloo", samples_per_prompt=4),   # with a critic, without,
                                       dict(advantage="baseline", kl_target=0.5)])       # and an adaptive β and baseline
def test_a_killed_run_resumes_to_the_same_result(tmp_path, estimator):
    ppo.train_ppo(tiny_ppo(tmp_path / "full", eval_every=1, **estimator), reward_fn=starts_with(ord("T")))
    with pytest.raises(KeyboardInterrupt):
        ppo.train_ppo(tiny_ppo(tmp_path / "cut", eval_every=1, **estimator),
                      reward_fn=killed_after(1, starts_with(ord("T"))))
    before_kill = float(tensor_metadata(tmp_path / "cut" / "train_state.safetensors")["seconds"])
    ppo.train_ppo(tiny_ppo(tmp_path / "cut", eval_every=1, **estimator), reward_fn=starts_with(ord("T")))
    full, cut = load_model(tmp_path / "full"), load_model(tmp_path / "cut")
    assert all(torch.equal(a, b) for a, b in zip(full.state_dict().values(), cut.state_dict().values()))
    assert len((tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()) == 2
    assert json.loads((tmp_path / "cut" / "metrics.json").read_text())["wall_seconds"] > before_kill > 0


def test_a_train_state_without_the_leash_asks_for_a_fresh_start(tmp_path):
    from rlhf_lab.run import load_tensors, save_tensors
    with pytest.raises(KeyboardInterrupt):
        ppo.train_ppo(tiny_ppo(tmp_path / "ppo", eval_every=1), reward_fn=killed_after(1, starts_with(ord("T"))))
    state = tmp_path / "ppo" / "train_state.safetensors"
    meta = {k: v for k, v in tensor_metadata(state).items() if k not in ("kl_coef", "baseline")}
    save_tensors(state, load_tensors(state), meta)
    with pytest.raises(ConfigError, match="keeps no β or baseline .* pass --no-resume"):
        ppo.train_ppo(tiny_ppo(tmp_path / "ppo", eval_every=1), reward_fn=starts_with(ord("T")))


def test_no_two_seeds_iterations_or_ranks_share_a_sampling_stream():
    from rlhf_lab.run import stream_seed
    keys = [(seed, stream, it, rank) for seed in range(3) for stream in range(2) for it in range(40) for rank in range(4)]
    assert len({stream_seed(*k) for k in keys}) == len(keys)   # seed + iteration gave --seed 1 the stream of --seed 0


def test_a_finished_run_is_left_as_it_is_even_from_before_a_flag_existed(tmp_path):
    ppo.train_ppo(tiny_ppo(tmp_path / "ppo"), reward_fn=starts_with(ord("T")))
    config = tmp_path / "ppo" / "config.json"
    older = {k: v for k, v in json.loads(config.read_text()).items() if k != "prompts"}   # a run the flag postdates
    config.write_text(json.dumps(older))
    files = {f: f.stat().st_mtime_ns for f in (tmp_path / "ppo").iterdir()}
    metrics = ppo.train_ppo(tiny_ppo(tmp_path / "ppo"), reward_fn=starts_with(ord("T")))
    assert {f: f.stat().st_mtime_ns for f in (tmp_path / "ppo").iterdir()} == files
    assert metrics == json.loads((tmp_path / "ppo" / "metrics.json").read_text())


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline")
    return out, pipeline.main(pipeline.PipelineConfig(out=str(out), preset="tiny", device="cpu"))


def test_tiny_pipeline_writes_every_stage_and_raises_the_proxy_reward(tiny_pipeline):
    out, summary = tiny_pipeline
    for stage in ("rm", "ppo", "eval"):
        assert (out / stage / "metrics.json").exists() and (out / stage / "config.json").exists()
    assert json.loads((out / "config.json").read_text())["preset"] == "tiny"
    assert json.loads((out / "rm" / "metrics.json").read_text())["device"] == "cpu"     # the device it ran on
    assert (out / "report.md").read_text().startswith("# SFT versus the RLHF policy")
    assert (out / "eval" / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary["proxy_mean_policy"] > summary["proxy_mean_sft"]
    assert summary["kl_to_ref"] > 0


def test_a_rerun_that_a_stage_refuses_leaves_the_pipelines_config_and_figures_as_they_were(tiny_pipeline):
    from rlhf_lab.run import ConfigError
    out, _ = tiny_pipeline
    before = {name: (out / name).read_bytes() for name in pipeline.PIPELINE_OUTPUTS}
    with pytest.raises(ConfigError, match=r"holds a run with a different config \(seed\)"):
        pipeline.main(pipeline.PipelineConfig(out=str(out), preset="tiny", device="cpu", seed=1))
    assert {name: (out / name).read_bytes() for name in pipeline.PIPELINE_OUTPUTS} == before


def test_a_finished_pipeline_run_again_leaves_every_stage_and_its_eval_as_they_are(tiny_pipeline, capsys):
    out, summary = tiny_pipeline
    files = {f: f.stat().st_mtime_ns for stage in ("rm", "ppo", "eval") for f in (out / stage).iterdir()}
    assert pipeline.main(pipeline.PipelineConfig(out=str(out), preset="tiny", device="cpu")) == summary
    assert {f: f.stat().st_mtime_ns for f in files} == files
    out_text = capsys.readouterr().out
    assert "already judged this policy" in out_text
    hint = next(line for line in out_text.splitlines() if "rlhf sample" in line).split("rlhf ", 1)[1]
    assert hint == f"sample --models shipped {out / 'ppo'} --rm {out / 'rm'}"
    assert cli.main(hint.split() + ["--max-new-tokens", "8", "--device", "cpu"]) == 0    # the hint runs as printed


def test_a_finished_pipeline_moved_elsewhere_is_still_finished(tiny_pipeline, tmp_path, capsys):
    import shutil
    out, summary = tiny_pipeline
    moved = shutil.copytree(out, tmp_path / "moved")      # every stage's inputs now lie under another path
    assert pipeline.main(pipeline.PipelineConfig(out=str(moved), preset="tiny", device="cpu")) == summary
    said = capsys.readouterr().out
    assert all(f"{moved / stage} already" in said for stage in ("rm", "ppo", "eval"))


def test_a_pipelines_eval_is_judged_again_once_the_policy_changed(tiny_pipeline, tmp_path):
    import shutil
    from rlhf_lab.run import changed_flags, input_digests, recorded_config
    moved = shutil.copytree(tiny_pipeline[0], tmp_path / "moved")
    cfg = pipeline.stage_configs(pipeline.PipelineConfig(out=str(moved), preset="tiny", device="cpu"))[3]

    def changed():
        return changed_flags(moved / "eval", "eval", cfg, recorded_config("eval", cfg), input_digests(cfg))
    assert changed() == []                                                   # pipeline.judged reuses it
    (moved / "ppo" / "model.safetensors").write_bytes(b"another policy")
    assert changed() == ["policy"]                       # another path, and no longer the same contents


def test_tiny_pipeline_trades_visible_flaws_for_the_ideal_style(tiny_pipeline):
    """What the reward model knows, PPO learns even at tiny sizes: padding, hedging, markdown,
    repetition and flattery give way to the ideal. Gold itself moves by less than its sampling
    noise at this size (measured 0.526 → 0.512 on 137 prompts, because wrong answers rise too);
    the slow full-size test asserts that gold rises."""
    _, summary = tiny_pipeline
    flawed = ("verbose", "hedging", "repetitive", "formatted", "sycophantic")
    sft, policy = summary["style_mix_sft"], summary["style_mix_policy"]
    assert policy["ideal"] > sft["ideal"] + 0.1
    assert sum(policy[s] for s in flawed) < 0.5 * sum(sft[s] for s in flawed)


def test_temperature_lab_sets_both_models_side_by_side_at_each_temperature(tiny_pipeline, tmp_path):
    from rlhf_lab.lab import temperature
    run, _ = tiny_pipeline
    figures = temperature.main(temperature.TemperatureConfig(out=str(tmp_path), run=str(run),
                                                             temperatures=[1.0, 0.0], quick=True, device="cpu"))
    assert list(figures) == ["0", "1"]                             # ascending, whatever the order asked
    greedy, sampled = figures["0"], figures["1"]
    assert greedy["temperature"] == 0.0 and greedy["comparisons"] == greedy["prompts"]   # one greedy answer each
    assert "kl_to_ref" in sampled and "kl_to_ref" not in greedy    # KL(π‖π_ref) needs π's own samples
    assert (tmp_path / "temperature.png").exists()
    assert "Finding:" in (tmp_path / "report.md").read_text()


def test_eval_tells_the_judge_which_answers_were_cut_at_max_new_tokens(tiny_pipeline, monkeypatch):
    from rlhf_lab.evaluate import EvalConfig, compare
    run, _ = tiny_pipeline
    told, judge = [], World.judge

    def telling(self, prompt, response, finished=True):
        told.append(finished)
        return judge(self, prompt, response, finished)
    monkeypatch.setattr(World, "judge", telling)
    for limit in (8, 192):                  # every world answer is longer than 8 bytes, none longer than 180
        told.clear()
        metrics, _ = compare(EvalConfig(policy=str(run / "ppo"), rm=str(run / "rm"), prompts=4, samples_per_prompt=1,
                                        max_new_tokens=limit, device="cpu"))
        assert len(told) == 2 * 4 and set(told) == {limit == 192}
    assert metrics["well_formed_rate_sft"] > 0


def test_eval_notes_a_baseline_or_reward_model_other_than_the_ones_the_policy_trained_with(tiny_pipeline):
    from rlhf_lab.evaluate import EvalConfig, not_what_the_policy_read
    from rlhf_lab.run import input_digests
    run, _ = tiny_pipeline
    trained_with = EvalConfig(policy=str(run / "ppo")).with_policy_defaults()
    other_sft = replace(trained_with, sft=str(run / "ppo"), rm=str(run / "rm"))
    assert not_what_the_policy_read(trained_with, input_digests(trained_with)) == []
    assert not_what_the_policy_read(other_sft, input_digests(other_sft)) == ["sft"]


def test_greedy_answers_do_not_depend_on_the_sampling_seed(tiny_pipeline):
    from rlhf_lab.evaluate import EvalConfig, compare
    run, _ = tiny_pipeline
    sides = [compare(EvalConfig(policy=str(run / "ppo"), rm=str(run / "rm"), temperature=0.0, prompts=8,
                                seed=seed, device="cpu"))[1] for seed in (0, 1)]
    assert sides[0] == sides[1]


def test_from_scratch_pipeline_hands_its_own_sft_model_to_every_later_stage(tmp_path):
    summary = pipeline.main(pipeline.PipelineConfig(out=str(tmp_path), preset="tiny", from_scratch=True,
                                                    device="cpu"))
    sft = str(tmp_path / "sft")
    assert (tmp_path / "sft" / "model.safetensors").exists()
    for stage in ("rm", "ppo"):
        assert json.loads((tmp_path / stage / "config.json").read_text())["sft"] == sft
    assert summary["comparisons"] > 0


@pytest.mark.slow
def test_default_pipeline_improves_gold_with_the_proxy(tmp_path):
    """The full-size run (about 7 minutes on 2 CPU cores): gold and proxy rise together,
    the ideal style gains share, the policy wins more than half its gold comparisons."""
    summary = pipeline.main(pipeline.PipelineConfig(out=str(tmp_path), device="cpu"))
    assert summary["proxy_mean_policy"] > summary["proxy_mean_sft"]
    assert summary["gold_mean_policy"] > summary["gold_mean_sft"]
    assert summary["style_mix_policy"]["ideal"] > summary["style_mix_sft"]["ideal"] + 0.1
    assert summary["gold_win_rate_vs_sft"] > 0.5


def test_win_rate_counts_ties_half_with_a_standard_error_over_prompts():
    from types import SimpleNamespace
    from rlhf_lab.evaluate import win_rate
    policy, sft = ([SimpleNamespace(score=s) for s in scores]                  # verdicts with these gold scores
                   for scores in ([1.0, 0.5, 0.0, 1.0], [0.0, 0.5, 1.0, 0.5]))
    rate, se = win_rate(["a", "b", "c", "d"], policy, sft)    # outcomes 1, 0.5, 0, 1
    assert rate == pytest.approx(2.5 / 4)
    assert se == pytest.approx(torch.tensor([1, 0.5, 0, 1]).std().item() / 2)
    rate, se = win_rate(["a", "a", "b", "b"], policy, sft)    # per prompt 0.75 and 0.5
    assert rate == pytest.approx(2.5 / 4)
    assert se == pytest.approx(torch.tensor([0.75, 0.5]).std().item() / 2 ** 0.5)


def test_eval_breaks_the_comparison_down_by_task_family():
    import random
    from rlhf_lab.evaluate import by_family, judge_all
    world, rng = World(), random.Random(0)
    capitals, arithmetic = ([t for t in world.tasks("train") if t.family == family][:2]
                            for family in ("capitals", "arithmetic"))
    tasks = capitals + arithmetic
    policy = [world.respond(t, "ideal", rng) for t in tasks]
    sft = [world.respond(capitals[0], "wrong", rng), "zzzz"] + [world.respond(t, "ideal", rng) for t in arithmetic]
    prompts = [t.prompt for t in tasks]
    figures = by_family(world, prompts, judge_all(world, prompts, policy), judge_all(world, prompts, sft))
    assert set(figures) == {"capitals", "arithmetic"}
    assert figures["capitals"]["comparisons"] == 2 and figures["capitals"]["gold_win_rate_vs_sft"] == 1.0
    assert figures["capitals"]["wrong_sft"] == 0.5 and figures["capitals"]["unparseable_sft"] == 0.5
    assert figures["capitals"]["slip_sft"] == 0.0                      # the world's wrong answer is a decoy
    assert figures["capitals"]["wrong_policy"] == 0.0 and figures["capitals"]["gold_mean_policy"] == 1.0
    assert figures["arithmetic"]["gold_win_rate_vs_sft"] == 0.5      # both ideal: a tie


def test_eval_kl_estimates_the_exact_kl_on_the_sampled_tokens():
    from rlhf_lab.evaluate import kl_per_response
    from rlhf_lab.model import GPTConfig, MiniGPT, SamplingConfig
    from rlhf_lab.rollout import sample_rollouts
    torch.manual_seed(0)
    policy, reference = (MiniGPT(GPTConfig(context_len=32, width=16, n_layers=1, n_heads=2, ffn=32)).eval()
                         for _ in range(2))
    with torch.no_grad():                    # peaked next-token distributions, far apart
        for param in [*policy.parameters(), *reference.parameters()]:
            param.mul_(5)
    # one sampled token per response: the exact KL is Σ_v p(v) log p(v)/q(v) after the prompt
    rollouts = sample_rollouts(policy, ["hi"] * 4000, SamplingConfig(max_new_tokens=1), batch_size=1000)
    tokens, mask = encode_prompts(BYTES, ["hi"], "cpu")
    with torch.no_grad():
        p, q = (torch.log_softmax(m(tokens, mask)[0, -1], -1) for m in (policy, reference))
    exact = (p.exp() * (p - q)).sum().item()
    assert kl_per_response(policy, policy, rollouts)[0] == 0
    kl, se = kl_per_response(policy, reference, rollouts)
    assert kl == pytest.approx(exact, rel=0.1)
    assert math.isnan(se)                     # one prompt: no spread between prompts to measure


def test_a_written_file_and_its_name_reach_the_disk_before_the_write_returns(tmp_path, monkeypatch):
    from rlhf_lab.run import write_json
    synced, fsync = [], os.fsync

    def recording(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        fsync(fd)
    monkeypatch.setattr(os, "fsync", recording)
    write_json(tmp_path / "metrics.json", {"gold": 0.9})
    assert synced == [False, True]          # the contents, then the directory entry the rename made
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"gold": 0.9}


def interrupt_at_step(monkeypatch, step):
    """Make the optimizer step number `step` raise KeyboardInterrupt, as a kill would land."""
    from rlhf_lab import optim
    real, calls = optim.clip_and_step, []

    def step_or_die(*args, **kwargs):
        calls.append(1)
        if len(calls) == step:
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    monkeypatch.setattr(optim, "clip_and_step", step_or_die)


@pytest.mark.parametrize("stage", ["sft", "rm"])
def test_killed_sft_and_reward_runs_resume_to_the_same_weights(tmp_path, monkeypatch, capsys, stage):
    from rlhf_lab import reward, sft
    model = dict(width=32, n_layers=1, n_heads=2, ffn=64, device="cpu")
    if stage == "sft":   # a train state every 3 steps; killed in step 5, resumed from 3
        def train(out):
            return sft.train_sft(sft.SFTConfig(out=str(out), steps=6, examples=64, batch_size=4, eval_every=3,
                                               eval_samples=4, **model))
    else:                # a train state each epoch (4 steps); killed in step 6, resumed from 4
        sft.train_sft(sft.SFTConfig(out=str(tmp_path / "sft"), steps=2, examples=16, batch_size=4, eval_every=2,
                                    eval_samples=2, **model))

        def train(out):
            return reward.train_reward(reward.RewardConfig(out=str(out), sft=str(tmp_path / "sft"), pairs=84 * 2,
                                                           batch_size=2, epochs=2, norm_samples=4, heldout_pairs=21,
                                                           device="cpu"))
    train(tmp_path / "full")
    interrupt_at_step(monkeypatch, 5 if stage == "sft" else 6)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "cut")
    monkeypatch.undo()
    capsys.readouterr()
    train(tmp_path / "cut")
    resumed_at = 3 if stage == "sft" else 4
    assert f"resumed from {tmp_path / 'cut'}" in (out := capsys.readouterr().out)   # resumed, not restarted
    assert f"at step {resumed_at}" in out
    full, cut = (load_file(str(tmp_path / run / "model.safetensors")) for run in ("full", "cut"))
    assert full.keys() == cut.keys() and all(torch.equal(full[k], cut[k]) for k in full)
    log = [json.loads(line)["step"] for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert log == sorted(set(log))                      # nothing logged twice after the resume
    finished = (tmp_path / "cut" / "metrics.json").read_text()
    assert train(tmp_path / "cut") == json.loads(finished)               # a finished run is left as it is,
    assert (tmp_path / "cut" / "metrics.json").read_text() == finished   # its wall time included
    assert "already finished" in capsys.readouterr().out


@pytest.mark.parametrize("groups, epochs, killed_at, logged", [
    (8, 2, 8 + 6, [4, 8, 12, 16]),         # 4 steps an epoch, 8 per member: killed in member 1's second epoch
    (24, 1, 12 + 11, [10, 12, 22, 24])])   # 12 steps an epoch: killed after member 1's step-10 log line, before
                                           # its first train state
def test_a_killed_ensemble_resumes_with_every_members_log_lines(tmp_path, monkeypatch, groups, epochs, killed_at,
                                                                 logged):
    from rlhf_lab import reward, sft
    model = dict(width=32, n_layers=1, n_heads=2, ffn=64, device="cpu")
    sft.train_sft(sft.SFTConfig(out=str(tmp_path / "sft"), steps=2, examples=16, batch_size=4, eval_every=2,
                                eval_samples=2, **model))

    def train():   # train states each epoch; log lines each epoch and every 10 steps
        reward.train_reward(reward.RewardConfig(out=str(tmp_path / "rm"), sft=str(tmp_path / "sft"),
                                                pairs=21 * groups, batch_size=2, epochs=epochs, ensemble=2,
                                                norm_samples=4, heldout_pairs=21, device="cpu"))
    interrupt_at_step(monkeypatch, killed_at)
    with pytest.raises(KeyboardInterrupt):
        train()
    monkeypatch.undo()
    train()
    log = [json.loads(line)["step"] for line in (tmp_path / "rm" / "metrics.jsonl").read_text().splitlines()]
    assert log == logged


def test_optimizer_moments_return_to_their_own_parameters(tmp_path):
    from rlhf_lab.run import load_train_state, save_train_state
    torch.manual_seed(0)
    unused, used = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)     # same shapes: a shifted moment would load
    modules = {"unused": unused, "used": used}
    optimizer = torch.optim.AdamW([*unused.parameters(), *used.parameters()])
    used(torch.randn(2, 3)).sum().backward()                        # `unused` never gets a gradient
    optimizer.step()
    save_train_state(tmp_path / "state.safetensors", modules, optimizer, 1)
    fresh_modules = {"unused": torch.nn.Linear(3, 3), "used": torch.nn.Linear(3, 3)}
    fresh = torch.optim.AdamW([*fresh_modules["unused"].parameters(), *fresh_modules["used"].parameters()])
    load_train_state(tmp_path / "state.safetensors", fresh_modules, fresh)
    saved, loaded = optimizer.state_dict()["state"], fresh.state_dict()["state"]
    assert saved.keys() == loaded.keys() == {2, 3}
    assert all(torch.equal(saved[i]["exp_avg"], loaded[i]["exp_avg"]) for i in saved)


def test_pipeline_passes_no_resume_to_every_training_stage():
    stages = pipeline.stage_configs(pipeline.PipelineConfig(resume=False))
    assert [s.resume for s in stages[:3]] == [False, False, False]
    assert all(s.resume for s in pipeline.stage_configs(pipeline.PipelineConfig())[:3])


def test_pipeline_hands_its_estimator_and_entropy_term_to_the_ppo_stage():
    ppo_cfg = pipeline.stage_configs(pipeline.PipelineConfig(advantage="rloo", samples_per_prompt=4))[2]
    assert (ppo_cfg.advantage, ppo_cfg.samples_per_prompt, ppo_cfg.entropy_coef) == ("rloo", 4, -1.0)
    assert pipeline.stage_configs(pipeline.PipelineConfig(entropy_coef=0.0))[2].entropy_coef == 0.0


def test_the_gold_reward_is_the_judge_scaled_on_the_sft_models_own_answers():
    world, sft = World(), load_model(SHIPPED_SFT)
    score = ppo.gold_reward(world, sft, 0, SamplingConfig())
    prompts = world.prompts("train")[:ppo.GOLD_NORM_SAMPLES]
    rollouts = sample_rollouts(sft, prompts, SamplingConfig(), seed=0)
    scores = torch.cat([score(r) for r in rollouts])
    assert scores.mean().abs() < 1e-5 and (scores.std() - 1).abs() < 1e-5
    short = SamplingConfig(max_new_tokens=24)       # PPO's --max-new-tokens: more answers cut, and malformed
    cut_scores = torch.cat([ppo.gold_reward(world, sft, 0, short)(r)
                            for r in sample_rollouts(sft, prompts, short, seed=0)])
    assert cut_scores.mean().abs() < 1e-5 and (cut_scores.std() - 1).abs() < 1e-5
    gold = torch.tensor([world.gold(p, a) for p, a in zip(prompts, response_texts(rollouts))])
    assert torch.equal(scores.argsort(stable=True), gold.argsort(stable=True))
    r = rollouts[0]
    ideal = next(i for i, g in enumerate(gold[:len(r.prompts)].tolist()) if g == 1.0)
    cut = replace(r, tokens=r.tokens.clone())
    cut.tokens[ideal, r.prompt_len + int(r.response_mask[ideal].sum()) - 1] = ord("x")     # its EOS, gone
    assert not cut.ended[ideal] and score(cut)[ideal] < score(r)[ideal]   # an answer cut short is malformed


def test_a_critic_under_a_programmatic_reward_starts_at_zero():
    critic = ppo.new_critic(None, load_model(SHIPPED_SFT).requires_grad_(False))
    assert not critic.head.weight.any() and not critic.head.bias.any()
    assert all(p.requires_grad for p in critic.parameters())


def test_the_critic_starts_as_a_trainable_copy_of_the_reward_model():
    from rlhf_lab.model import GPTConfig, MiniGPT
    from rlhf_lab.reward import RewardModel
    reward_model = RewardModel(MiniGPT(GPTConfig(width=32, n_layers=1, n_heads=2, ffn=64)), likelihood_weight=5.0)
    reward_model.eval().requires_grad_(False)
    critic = ppo.new_critic(reward_model, load_model(SHIPPED_SFT))      # another trunk: the critic takes the RM's
    rm_state = reward_model.state_dict()
    assert all(torch.equal(v, rm_state[k]) for k, v in critic.state_dict().items() if k.startswith(("backbone", "head")))
    assert all(p.requires_grad for p in critic.parameters()) and critic.training
    with torch.no_grad():
        critic.head.weight.add_(1.0)
    assert not torch.equal(critic.head.weight, reward_model.head.weight)   # a copy: PPO's critic leaves the RM as it is


def test_ppo_against_the_gold_judge_needs_no_reward_model_and_neither_does_its_eval(tmp_path, monkeypatch):
    from rlhf_lab.evaluate import EvalConfig, compare, markdown_report
    monkeypatch.chdir(tmp_path)                                   # where the default --rm, runs/rm, is not
    with pytest.raises(ConfigError, match="--rm names a reward model, which --reward gold does not read: drop it"):
        ppo.train_ppo(tiny_ppo(tmp_path / "ppo", reward="gold", rm="my/rm"))
    ppo.train_ppo(tiny_ppo(tmp_path / "ppo", reward="gold", eval_every=1))
    logged = [json.loads(line) for line in (tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines()]
    assert len(logged) == 2 and all("ppo/value_loss" in row for row in logged)
    metrics, samples = compare(EvalConfig(policy=str(tmp_path / "ppo"), prompts=4, samples_per_prompt=2,
                                          device="cpu"))
    assert "gold_win_rate_vs_sft" in metrics and not any(key.startswith("proxy") for key in metrics)
    report = markdown_report(metrics, samples)
    assert "| gold_mean |" in report and "proxy" not in report
    assert "4 held-out prompts (heldout_prompt), 2 answers to each from each model (sampled at temperature 1): " \
           "8 comparisons of one answer against one" in report


def test_the_ptx_loss_is_the_sft_loss_on_the_answers():
    from reference import TINY
    from rlhf_lab import sft
    from rlhf_lab.model import MiniGPT
    torch.manual_seed(0)
    model = MiniGPT(TINY)
    encoded = [BYTES.encode_pair("What is 2 plus 2?", "4."), BYTES.encode_pair("Hi", "Hello there.")]
    tokens, mask, loss_mask = ppo.Demonstrations(BYTES, encoded).draw(6, torch.Generator().manual_seed(0), "cpu")
    drawn = [(row[m].tolist(), int((~lm[m]).sum())) for row, m, lm in zip(tokens, mask, loss_mask)]
    assert all(d in encoded for d in drawn)
    expected = sft.response_loss(model, *sft.make_batch(BYTES, drawn, "cpu"))
    assert ppo.demonstration_loss(model, tokens, mask, loss_mask).item() == pytest.approx(expected.item(), rel=1e-5)


def test_ppo_ptx_holds_the_policy_to_its_demonstrations(tmp_path):
    demo = {"prompt": "Say the word.", "response": "Zebra quilt."}
    path = tmp_path / "demos.jsonl"
    path.write_text(json.dumps(demo) + "\n")
    likelihood = {}
    for coef in (0.0, 5.0):
        out = tmp_path / f"ptx{coef:g}"
        cfg = tiny_ppo(out, lr=3e-4, ptx_coef=coef, ptx_data=str(path) if coef else "")
        ppo.train_ppo(cfg, reward_fn=starts_with(ord("T")))
        policy = load_model(out)
        tokens, mask, loss_mask = ppo.Demonstrations(BYTES, [BYTES.encode_pair(demo["prompt"], demo["response"])]
                                                     ).draw(1, torch.Generator(), "cpu")
        with torch.no_grad():
            likelihood[coef] = -ppo.demonstration_loss(policy, tokens, mask, loss_mask).item()
        logged = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
        assert ("ppo/ptx_loss" in logged) == bool(coef)
    assert likelihood[5.0] > likelihood[0.0] + 0.5, likelihood
    assert json.loads((tmp_path / "ptx5" / "metrics.json").read_text())["data_files"][str(path)]["rows_loaded"] == 1


def test_ptx_data_without_a_ptx_coefficient_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="--ptx-data is read only with --ptx-coef above 0"):
        ppo.train_ppo(tiny_ppo(tmp_path, ptx_data="demos.jsonl"), reward_fn=starts_with(ord("T")))


def test_pipeline_with_init_fine_tunes_that_model_and_hands_the_result_on(tmp_path):
    sft_cfg, rm_cfg, ppo_cfg, eval_cfg = pipeline.stage_configs(pipeline.PipelineConfig(out=str(tmp_path),
                                                                                        init="my-model"))
    assert sft_cfg.init == "my-model"
    assert rm_cfg.sft == ppo_cfg.sft == eval_cfg.sft == str(tmp_path / "sft")
    with pytest.raises(ConfigError, match="--from-scratch and --init each choose the SFT model"):
        pipeline.main(pipeline.PipelineConfig(out=str(tmp_path), init="my-model", from_scratch=True))


def test_pipeline_with_sft_hands_that_model_on_untrained(tmp_path):
    cfg = pipeline.PipelineConfig(out=str(tmp_path), sft="runs/fast/sft")
    _, rm_cfg, ppo_cfg, eval_cfg = pipeline.stage_configs(cfg)
    assert not pipeline.trains_sft(cfg)
    assert rm_cfg.sft == ppo_cfg.sft == eval_cfg.sft == "runs/fast/sft"
    with pytest.raises(ConfigError, match="--init and --sft each choose the SFT model"):
        pipeline.main(pipeline.PipelineConfig(out=str(tmp_path), init="my-model", sft="runs/fast/sft"))
    with pytest.raises(ConfigError, match="--sft runs/fast/sft: no such run directory"):
        pipeline.main(cfg)
    assert not any(tmp_path.iterdir())                                # refused before anything is written


def test_an_entropy_penalty_sharpens_the_policy_and_a_bonus_flattens_it(tmp_path):
    """D21: with the reward flat, the entropy term alone moves the policy: a negative
    coefficient lowers its entropy on a fixed rollout, a positive one raises it."""
    from functools import partial
    from rlhf_lab.model import token_logprobs
    from rlhf_lab.rollout import rollout
    sft = load_model(SHIPPED_SFT)
    fixed = rollout(sft, World().prompts("train")[:16], SamplingConfig(max_new_tokens=32),
                    torch.Generator().manual_seed(0))
    entropy = {}
    for coef in (-1.0, 0.0, 1.0):
        out = tmp_path / f"entropy{coef:g}"
        ppo.train_ppo(tiny_ppo(out, lr=3e-4, entropy_coef=coef), reward_fn=lambda r: torch.zeros(len(r.responses)))
        with torch.no_grad():
            _, per_token = ppo.by_length(partial(token_logprobs, load_model(out)), fixed)
        entropy[coef] = ppo.masked_mean(per_token, fixed.response_mask).item()
    assert entropy[-1.0] < entropy[0.0] < entropy[1.0]


def test_a_ppo_run_stopped_after_its_last_checkpoint_keeps_its_samples(tmp_path, monkeypatch):
    ppo.train_ppo(tiny_ppo(tmp_path / "full"), reward_fn=starts_with(ord("T")))

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(ppo, "finish", stopped)          # killed between the last checkpoint and the final save
    with pytest.raises(KeyboardInterrupt):
        ppo.train_ppo(tiny_ppo(tmp_path / "cut"), reward_fn=starts_with(ord("T")))
    monkeypatch.undo()
    ppo.train_ppo(tiny_ppo(tmp_path / "cut"), reward_fn=starts_with(ord("T")))   # resumed with no iteration left
    assert (tmp_path / "cut" / "samples.json").read_text() == (tmp_path / "full" / "samples.json").read_text()


def test_a_reward_run_stopped_right_after_a_checkpoint_keeps_that_epochs_log_line(tmp_path, monkeypatch):
    from rlhf_lab import reward, sft
    model = dict(width=32, n_layers=1, n_heads=2, ffn=64, device="cpu")
    sft.train_sft(sft.SFTConfig(out=str(tmp_path / "sft"), steps=2, examples=16, batch_size=4, eval_every=2,
                                eval_samples=2, **model))

    def train():   # 8 groups, 4 steps an epoch; a train state and a log line each epoch
        reward.train_reward(reward.RewardConfig(out=str(tmp_path / "rm"), sft=str(tmp_path / "sft"), pairs=84 * 2,
                                                batch_size=2, epochs=2, norm_samples=4, heldout_pairs=21,
                                                device="cpu"))
    saved = reward.save_train_state

    def save_then_stop(*args, **kwargs):
        saved(*args, **kwargs)
        raise KeyboardInterrupt
    monkeypatch.setattr(reward, "save_train_state", save_then_stop)   # killed just after epoch 1's train state
    with pytest.raises(KeyboardInterrupt):
        train()
    monkeypatch.undo()
    train()
    log = [json.loads(line)["step"] for line in (tmp_path / "rm" / "metrics.jsonl").read_text().splitlines()]
    assert log == [4, 8]


def test_a_fresh_start_clears_the_last_runs_outputs_and_any_file_a_kill_cut_short(tmp_path):
    from rlhf_lab.run import Run
    from rlhf_lab.sft import SFTConfig
    for name in ("model.safetensors", "samples.json", "metrics.json", ".model.safetensors.x1y2.partial",
                 "reliability.png"):
        (tmp_path / name).write_text("from the run before")
    (tmp_path / "eval").mkdir()                               # `rlhf eval`'s report on the model before
    (tmp_path / "eval" / "config.json").write_text('{"stage": "eval"}')
    (tmp_path / "eval" / "report.md").write_text("win rate 0.83")
    (tmp_path / "notes").mkdir()                              # a directory of the user's own
    (tmp_path / "notes" / "config.json").write_text('{"stage": "mine"}')
    Run(tmp_path, "sft", SFTConfig(out=str(tmp_path), resume=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "notes"]   # nothing old passes as this run's


def test_another_stages_run_is_never_cleared_and_a_finished_one_is_kept_without_its_train_state(tmp_path):
    from rlhf_lab.run import ConfigError, Run
    from rlhf_lab.reward import RewardConfig
    from rlhf_lab.sft import SFTConfig
    Run(tmp_path, "sft", SFTConfig(out=str(tmp_path)))
    (tmp_path / "metrics.json").write_text("{}")                  # finished; its train state pruned away
    (tmp_path / "model.safetensors").write_text("the SFT model")
    for resume in (True, False):
        with pytest.raises(ConfigError, match=r"holds an `rlhf sft` run; choose another --out"):
            Run(tmp_path, "train-rm", RewardConfig(out=str(tmp_path), resume=resume))
    assert Run(tmp_path, "sft", SFTConfig(out=str(tmp_path))).finished
    with pytest.raises(ConfigError, match=r"different config \(steps\)"):
        Run(tmp_path, "sft", SFTConfig(out=str(tmp_path), steps=5))
    assert (tmp_path / "model.safetensors").read_text() == "the SFT model"


def test_a_config_that_is_not_a_json_object_is_one_clear_error(tmp_path):
    from rlhf_lab.run import ConfigError, Run
    from rlhf_lab.sft import SFTConfig
    (tmp_path / "config.json").write_text("5")
    with pytest.raises(ConfigError, match=r"config.json: not a JSON object"):
        Run(tmp_path, "sft", SFTConfig(out=str(tmp_path)))


def test_a_step_log_cut_mid_line_loses_only_that_line(tmp_path):
    from rlhf_lab.run import ConfigError, read_log
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')   # a crash mid-append
    assert read_log(tmp_path) == [{"step": 1, "loss": 2.0}]
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "lo\n{"step": 2, "loss": 1.0}\n')
    with pytest.raises(ConfigError, match=r"metrics.jsonl:1: not a JSON line"):
        read_log(tmp_path)


def test_out_may_not_be_the_model_the_run_starts_from(tmp_path):
    from rlhf_lab.run import ConfigError, Run
    from rlhf_lab.reward import RewardConfig
    with pytest.raises(ConfigError, match="is also --sft"):
        Run(tmp_path / "sft", "train-rm", RewardConfig(out=str(tmp_path / "sft"), sft=str(tmp_path / "sft")))


def test_a_pipeline_reading_one_of_its_own_stage_directories_stops_before_any_stage(tmp_path, monkeypatch):
    (tmp_path / "ppo").mkdir()
    monkeypatch.setattr(pipeline.reward, "main", lambda cfg: pytest.fail("the reward model trained first"))
    with pytest.raises(ConfigError, match=r"--out .*ppo is also --sft"):
        pipeline.main(pipeline.PipelineConfig(out=str(tmp_path), sft=str(tmp_path / "ppo"), device="cpu"))


def test_figures_are_written_whole(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rlhf_lab.run import save_figure
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    save_figure(fig, tmp_path / "curve.png")
    plt.close(fig)
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["curve.png"]       # no temporary file left beside it


def test_resume_checks_what_the_inputs_hold_not_where_they_are(tmp_path):
    from rlhf_lab.run import ConfigError, Run
    from rlhf_lab.ppo import PPOConfig
    (tmp_path / "rm").mkdir()
    (tmp_path / "rm" / "model.safetensors").write_bytes(b"reward model one")
    cfg = PPOConfig(out=str(tmp_path / "ppo"), rm=str(tmp_path / "rm"))
    Run(cfg.out, "ppo", cfg)
    (tmp_path / "ppo" / "train_state.safetensors").write_bytes(b"")     # a killed run's checkpoint
    (tmp_path / "rm").rename(tmp_path / "moved")                        # the same reward model elsewhere
    Run(cfg.out, "ppo", replace(cfg, rm=str(tmp_path / "moved")))       # resumes
    (tmp_path / "moved" / "model.safetensors").write_bytes(b"reward model two")   # retrained in place
    with pytest.raises(ConfigError, match=r"different config \(rm: .*moved changed since the run began\)"):
        Run(cfg.out, "ppo", replace(cfg, rm=str(tmp_path / "moved")))


def test_a_run_resumed_on_another_number_of_torchrun_processes_is_refused(tmp_path, monkeypatch):
    from rlhf_lab import distributed
    from rlhf_lab.run import ConfigError, Run, read_json
    cfg = ppo.PPOConfig(out=str(tmp_path))
    Run(tmp_path, "ppo", cfg)
    assert read_json(tmp_path / "config.json")["world_size"] == 1
    (tmp_path / "train_state.safetensors").write_bytes(b"")     # a killed run's checkpoint
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    with pytest.raises(ConfigError, match=r"different config \(world_size\)"):
        Run(tmp_path, "ppo", cfg)
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    assert distributed.shard(["a", "b", "c"], "training prompts") == ["b"]
    monkeypatch.setattr(distributed, "world_size", lambda: 4)    # a rank with nothing to train on
    with pytest.raises(ConfigError, match="3 training prompts for 4 torchrun processes"):
        distributed.shard(["a", "b", "c"], "training prompts")


def test_a_run_that_recorded_the_shipped_checkpoint_by_its_install_path_still_resumes(tmp_path):
    from rlhf_lab.run import Run
    Run(tmp_path, "ppo", replace(ppo.PPOConfig(out=str(tmp_path)), sft=SHIPPED_SFT))   # as runs before the name did
    (tmp_path / "inputs.json").unlink()
    (tmp_path / "train_state.safetensors").write_bytes(b"")
    Run(tmp_path, "ppo", ppo.PPOConfig(out=str(tmp_path)))                             # --sft shipped, the default


def test_digests_name_contents_and_only_of_what_exists(tmp_path):
    from rlhf_lab.run import digest, flag_path, input_digests
    (tmp_path / "a.jsonl").write_text("{}\n")
    (tmp_path / "b.jsonl").write_text("{}\n")
    assert digest(tmp_path / "a.jsonl") == digest(tmp_path / "b.jsonl")        # a renamed file is the same input
    (tmp_path / "unfinished").mkdir()                                            # a run directory with no model yet
    assert input_digests(ppo.PPOConfig(rm=str(tmp_path / "unfinished"), prompts=str(tmp_path / "a.jsonl"))) == {
        "sft": digest(Path(SHIPPED_SFT)), "prompts": digest(tmp_path / "a.jsonl")}
    assert flag_path("rm", "shipped") == Path("shipped") and flag_path("sft", "shipped") == Path(SHIPPED_SFT)


def test_ppo_against_a_given_reward_records_no_reward_model(tmp_path):
    (tmp_path / "rm").mkdir()
    (tmp_path / "rm" / "model.safetensors").write_bytes(b"a reward model this run never reads")
    ppo.train_ppo(tiny_ppo(tmp_path / "run", rm=str(tmp_path / "rm")), reward_fn=starts_with(ord("T")))
    assert list(json.loads((tmp_path / "run" / "inputs.json").read_text())) == ["sft"]


def test_a_run_from_the_shipped_checkpoint_records_it_by_name(tmp_path):
    from rlhf_lab.run import SHIPPED, Run, digest
    Run(tmp_path, "ppo", ppo.PPOConfig(out=str(tmp_path)))
    assert json.loads((tmp_path / "config.json").read_text())["sft"] == SHIPPED       # not this install's path
    assert json.loads((tmp_path / "inputs.json").read_text())["sft"] == digest(Path(SHIPPED_SFT))
    assert load_model(SHIPPED).config == load_model(SHIPPED_SFT).config


def test_a_ppo_run_that_diverges_stops_with_its_iteration_and_saves_no_model(tmp_path):
    with pytest.raises(ConfigError, match=r"ppo iteration 1: the gradient norm is (nan|inf).*--lr"):
        ppo.train_ppo(tiny_ppo(tmp_path / "run", lr=1e30), reward_fn=starts_with(ord("T")))
    assert not (tmp_path / "run" / "model.safetensors").exists()
