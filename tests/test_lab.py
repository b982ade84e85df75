"""The lab's quick versions: the same code paths as the full experiments, small sizes."""
import json
import math

import pytest

from rlhf_lab.lab import (advantage, alignment_tax, annotator_bias, calibration, ensemble, kl_sweep, length_hack,
                          multi_objective, oracle, overoptimization, pooling)
from rlhf_lab.lab.overoptimization import bon_kl, fit, peak


def test_best_of_n_kl_is_analytic():
    assert bon_kl(1) == 0.0
    assert bon_kl(2) == pytest.approx(0.6931 - 0.5, abs=1e-4)


def test_fits_recover_the_functional_forms():
    d = [0.1 * i for i in range(1, 30)]
    bon = [{"d": 0.0, "gold": 0.5}] + [{"d": x, "gold": 0.5 + x * (2.0 - 0.8 * x)} for x in d]
    rl = [{"d": 0.0, "gold": 0.3}] + [{"d": x, "gold": 0.3 + x * (1.0 - 0.5 * math.log(x))} for x in d]
    assert fit(bon, "bon") == pytest.approx((2.0, 0.8), abs=1e-6)
    assert fit(rl, "rl") == pytest.approx((1.0, 0.5), abs=1e-6)
    assert peak(2.0, 0.8, "bon") == pytest.approx(1.25)


@pytest.mark.parametrize("module, config", [
    (pooling, pooling.PoolingConfig), (calibration, calibration.CalibrationConfig),
    (length_hack, length_hack.LengthHackConfig), (multi_objective, multi_objective.MultiObjectiveConfig),
    (kl_sweep, kl_sweep.KLSweepConfig), (overoptimization, overoptimization.OveroptimizationConfig),
    (ensemble, ensemble.EnsembleConfig), (advantage, advantage.AdvantageConfig), (oracle, oracle.OracleConfig),
    (annotator_bias, annotator_bias.AnnotatorBiasConfig), (alignment_tax, alignment_tax.AlignmentTaxConfig)])
def test_quick_experiment_writes_report_and_plot(tmp_path, module, config):
    figures = module.main(config(out=str(tmp_path), quick=True, device="cpu"))
    recorded = json.loads((tmp_path / "config.json").read_text())
    assert recorded["stage"] == "lab " + module.__name__.split(".")[-1].replace("_", "-") and recorded["quick"]
    reports = list(tmp_path.rglob("report.md"))
    assert reports and "Finding:" in "".join(r.read_text() for r in reports)
    assert list(tmp_path.glob("*.png")) or list(tmp_path.rglob("*.png"))
    assert json.loads((reports[0].parent / "report.json").read_text()) == json.loads(json.dumps(figures))
    assert figures


def test_the_oracle_finding_weighs_each_gap_against_its_noise_and_compares_wrong_shares():
    learned = ["reward model", 0.70, 0.02, 0.60, 0.21, 0.15, 0.70, 0.01, 0.70, 0.17, 0.12, 4.0]
    gold = ["gold judge", 0.72, 0.02, 0.62, 0.22, 0.16, 0.78, 0.01, 0.80, 0.09, 0.07, 3.0]
    text = oracle.finding(learned, gold)
    assert "on held-out prompts the oracle's policy wins 0.720 against the reward model's 0.700, within" in text
    assert "on training prompts the oracle's policy wins 0.780 against the reward model's 0.700, a gap beyond" in text
    assert "0.220 of held-out answers stay wrong, against 0.090 on the prompts PPO trains on" in text
    assert "Slips make up 0.160 of the held-out answers and 0.070 of the training ones." in text


def test_the_annotator_bias_finding_says_whether_the_trait_spread_and_where_gold_ended():
    row = ["format", 0.78, 0.075, 0.63, -0.12, 2.38, 0.38, 0.10, 0.38, 0.02, 5.0]
    assert ("format: the formatted share went from 0.075 to 0.630, the proxy from -0.12 to 2.38, gold from "
            "0.380 to 0.100 (win rate 0.380 ± 0.020): the policy learned the annotators' taste, and ended below SFT"
            in annotator_bias.finding(row))
    row[8] = 0.49
    assert "ended level with SFT" in annotator_bias.finding(row)
    row[8] = 0.60
    assert "ended still above SFT" in annotator_bias.finding(row)
    row[3] = 0.15
    assert "did not take over" in annotator_bias.finding(row)


def test_the_temperature_finding_calls_a_win_rate_within_two_standard_errors_of_a_half_a_tie():
    from rlhf_lab.lab import temperature
    keys = ("gold_win_rate_vs_sft", "gold_win_rate_se", "gold_mean_sft", "gold_mean_policy")
    rows = {0.0: dict(zip(keys, (0.47, 0.02, 0.96, 0.90))), 1.0: dict(zip(keys, (0.73, 0.02, 0.38, 0.76)))}
    assert "0.470 ± 0.020 at temperature 0, within two standard errors of a tie" in temperature.finding(rows)
    rows[0.0]["gold_win_rate_vs_sft"] = 0.41
    assert "so at that temperature it loses to SFT" in temperature.finding(rows)
    rows[0.0]["gold_win_rate_vs_sft"] = 0.55
    assert "so it beats SFT at every temperature measured" in temperature.finding(rows)


def test_a_best_of_n_fit_that_falls_from_the_start_peaks_at_zero_not_below():
    assert peak(-0.035, 0.1, "bon") == 0.0
    assert peak(0.4, -0.1, "bon") is None          # never turns down
    assert peak(-0.16, -0.03, "rl") == 0.0         # falls all the way


def test_a_fitted_peak_beyond_the_measured_range_is_no_peak():
    assert peak(0.16, 0.005, "rl", d_max=3.0) is None      # exp(31): far past the last point
    assert peak(2.0, 0.8, "bon", d_max=3.0) == pytest.approx(1.25)


def test_a_lab_reuses_a_reward_model_only_if_it_was_made_with_the_same_config(tmp_path, monkeypatch):
    from dataclasses import replace
    from rlhf_lab import reward
    from rlhf_lab.lab.report import reward_model_once
    from rlhf_lab.run import Run
    trained = []

    def train(cfg):   # what train_reward leaves behind: config.json and, at the end, metrics.json
        trained.append(cfg.pairs)
        Run(cfg.out, "train-rm", cfg).finish({})
    monkeypatch.setattr(reward, "train_reward", train)
    cfg = reward.RewardConfig(out=str(tmp_path / "rm"), pairs=256, resume=False)
    for again in (cfg, cfg, replace(cfg, pairs=7000)):
        assert reward_model_once(again) == tmp_path / "rm"
    assert trained == [256, 7000]


def test_a_peak_not_reached_is_only_known_to_lie_past_its_runs_farthest_point():
    from rlhf_lab.lab.overoptimization import later_peak
    run = lambda peak, farthest: {"rl_peak_d": peak, "rl": [{"d": 0.0}, {"d": farthest}]}
    assert later_peak(run(1.0, 2.0), run(1.5, 2.0), "rl") is True
    assert later_peak(run(1.5, 2.0), run(1.0, 2.0), "rl") is False
    assert later_peak(run(None, 1.0), run(1.5, 2.0), "rl") is None      # the first may peak past 1.5 too
    assert later_peak(run(None, 2.0), run(1.5, 2.0), "rl") is False     # the first still rose at 2.0
    assert later_peak(run(1.0, 2.0), run(None, 1.2), "rl") is True      # the second still rose at 1.2
    assert later_peak(run(None, 2.0), run(None, 3.0), "rl") is None


def test_the_ensemble_finding_cannot_tell_when_a_peak_lies_past_the_kl_measured(tmp_path):
    one = {"bon_peak_d": 1.0, "rl_peak_d": None, "best_of_n": [{"d": 0.0, "gold": 0.5}, {"d": 2.0, "gold": 0.6}],
           "rl": [{"d": 0.0, "gold": 0.5}, {"d": 1.0, "gold": 0.6}]}
    many = {**one, "bon_peak_d": 1.4, "rl_peak_d": 1.5, "rl": [{"d": 0.0, "gold": 0.5}, {"d": 1.5, "gold": 0.8}]}
    figures = ensemble.compare({"1 model": one, "4 models": many}, {}, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "under best-of-n the gold peak is at d = 1.40 with 4 models versus 1.00 with 1 model: the ensemble pushes" \
        in text
    assert "under PPO the gold peak is at d = 1.50 with 4 models versus none" in text and "runs cannot tell" in text
    assert figures is not None


def test_the_multi_objective_finding_follows_gold_and_length():
    sft = {"ppo/response_len": 60.0, "ppo/style_verbose": 0.10}
    alone = ["helpful only", 0.36, 135.0, 0.1, 0.77]
    assert multi_objective.trap_verdict(alone, ["mix", 0.42, 140.0, 0.1, 0.77], sft).startswith(
        "The mixture beat the biased reward on gold but did not avoid the trap")
    assert "also drifted longer, if less far" in multi_objective.trap_verdict(alone, ["mix", 0.42, 90.0, 0.1, 0.5],
                                                                              sft)
    assert "did not beat" in multi_objective.trap_verdict(alone, ["mix", 0.30, 90.0, 0.1, 0.5], sft)
    assert "avoided the verbosity trap" in multi_objective.trap_verdict(alone, ["mix", 0.5, 61.0, 0.2, 0.1], sft)
    assert "no trap to avoid" in multi_objective.trap_verdict(["helpful only", 0.5, 61.0, 0.2, 0.1], alone, sft)


def test_the_calibration_finding_says_which_way_the_worst_unseen_set_errs():
    seen = ["seen (training pairs)", 0.95, 0.93, 0.02, 0.01, 3.0, 500]
    under = ["unseen: prompt", 1.0, 0.60, 0.40, 0.02, 0.4, 500]
    over = ["unseen: fact", 0.62, 0.90, 0.28, 0.02, 2.5, 500]
    assert "'unseen: prompt'" in calibration.finding([seen, under, over]) and \
        "There the model is less confident than it is right." in calibration.finding([seen, under, over])
    assert "more confident than it is right" in calibration.finding([seen, over])
    assert "carries over" in calibration.finding([seen, [*over[:3], 0.05, *over[4:]]])


def test_a_lab_starts_a_stage_run_made_with_other_settings_over_instead_of_refusing_it(tmp_path, monkeypatch):
    from dataclasses import replace
    from rlhf_lab import reward
    from rlhf_lab.lab.report import made_otherwise, reward_model_once
    from rlhf_lab.ppo import PPOConfig
    from rlhf_lab.run import Run
    resumed = []

    def train(cfg):
        resumed.append(cfg.resume)
        Run(cfg.out, "train-rm", cfg).finish({})
    monkeypatch.setattr(reward, "train_reward", train)
    old = reward.RewardConfig(out=str(tmp_path / "rm"), pairs=256, warmup=100, resume=True)
    reward_model_once(old)
    reward_model_once(replace(old, warmup=30))      # the same lab flags, another library default
    assert resumed == [True, False]
    ppo_cfg = PPOConfig(out=str(tmp_path / "ppo"), resume=True)
    Run(ppo_cfg.out, "ppo", ppo_cfg)
    assert not made_otherwise(ppo_cfg, "ppo")
    assert made_otherwise(replace(ppo_cfg, lr=3e-4), "ppo")


def test_the_alignment_tax_finding_names_each_runs_tax_and_weighs_the_win_gap_against_its_noise():
    sft = ["SFT", 0.962, 0.022, "—", "—", 0.382, 0.219, 0.148, 0.257, "—"]
    plain = ["PPO", 0.896, 0.080, 0.726, 0.018, 0.757, 0.214, 0.177, 0.748, 2.9]
    ptx = ["PPO-ptx", 0.966, 0.022, 0.686, 0.017, 0.706, 0.157, 0.109, 0.644, 1.1]
    text = alignment_tax.finding(sft, plain, ptx)
    assert "plain PPO leaves 0.080 of its greedy answers wrong (+0.058 on SFT's 0.022)" in text
    assert "PPO-ptx 0.022 of its greedy answers wrong (+0.000" in text
    assert "within two standard errors of the difference (0.050)" in text          # gap 0.040
    assert "a gap beyond" in alignment_tax.finding(sft, plain, ptx[:3] + [0.6] + ptx[4:])


@pytest.mark.parametrize("argv, message", [
    (["pooling", "--seeds", "0"], "--seeds must be positive; got 0"),
    (["calibration", "--pairs", "0"], "--pairs must be positive; got 0"),
    (["length-hack", "--betas", "0", "nan"], "--betas must be a finite number; got nan"),
    (["multi-objective", "--helpful-weight", "5"], "--helpful-weight must be in [0, 1]; got 5.0"),
    (["multi-objective", "--length-bias", "inf"], "--length-bias must be a finite number; got inf"),
    (["kl-sweep", "--betas", "0.02", "-1"], "--betas must be at least 0; got -1.0"),
    (["overoptimization", "--prompts", "0"], "--prompts must be positive; got 0"),
    (["overoptimization", "--proxy-pairs", "500", "0"], "--proxy-pairs must be positive; got 0"),
    (["overoptimization", "--max-n", "0"], "--max-n must be positive; got 0"),
    (["overoptimization", "--max-n", "48"], "--max-n must be a power of 2 of at least 4; got 48"),
    (["overoptimization", "--max-n", "2"], "--max-n must be a power of 2 of at least 4; got 2"),
    (["pooling", "--seeds", "1"], "--seeds must be at least 2; got 1"),
    (["length-hack", "--betas", "0.1", "0.1"], "--betas: give two or more different values to compare"),
    (["ensemble", "--members", "1"], "--members must be at least 2; got 1"),
    (["advantage", "--rloo-k", "3"], "--rloo-k must divide the 64 episodes of a PPO batch; got 3"),
    (["oracle", "--iterations", "0"], "--iterations must be positive; got 0"),
    (["annotator-bias", "--strength", "inf"], "--strength must be a finite number; got inf"),
    (["alignment-tax", "--ptx-coef", "0"], "--ptx-coef must be positive; got 0.0"),
    (["temperature", "--temperatures", "0", "nan"], "--temperatures must be a finite number; got nan"),
])
def test_a_bad_value_is_refused_by_its_own_flag_before_any_work(tmp_path, capsys, argv, message):
    from rlhf_lab import cli
    assert cli.main(["lab", *argv, "--out", str(tmp_path / "lab"), "--device", "cpu"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "lab").exists()


def test_a_lab_rerun_with_its_flags_keeps_finished_runs_and_resumes_a_killed_one(tmp_path, capsys):
    from dataclasses import replace
    cfg = kl_sweep.KLSweepConfig(out=str(tmp_path), betas=[0.001, 0.5], quick=True, device="cpu")
    first = kl_sweep.main(cfg)
    rm_log = (tmp_path / "rm" / "metrics.json").stat().st_mtime_ns
    (tmp_path / "beta_0.5" / "metrics.json").unlink()     # killed after its last checkpoint, before it finished
    capsys.readouterr()
    again = kl_sweep.main(cfg)
    said = capsys.readouterr().out
    assert "holds a run with these flags" in said
    assert f"{tmp_path / 'beta_0.001'} already finished" in said and "in a lab, another --out" in said
    assert (tmp_path / "rm" / "metrics.json").stat().st_mtime_ns == rm_log            # kept, not trained again
    assert f"resumed from {tmp_path / 'beta_0.5' / 'train_state.safetensors'} at step 3" in said
    assert {k: v["gold"] for k, v in again.items()} == {k: v["gold"] for k, v in first.items()}

    other = kl_sweep.main(replace(cfg, betas=[0.001]))   # other flags: the PPO run starts over, the same reward model stays
    said = capsys.readouterr().out
    assert "already finished" not in said and "holds a run" not in said
    assert (tmp_path / "rm" / "metrics.json").stat().st_mtime_ns == rm_log
    assert other["β=0.001"]["gold"] == first["β=0.001"]["gold"]   # the same seed retrains it to the same numbers


def test_other_flags_clear_every_train_state_so_no_run_of_the_old_ones_continues(tmp_path):
    from dataclasses import replace
    from rlhf_lab.lab.report import start
    cfg = kl_sweep.KLSweepConfig(out=str(tmp_path), quick=True, device="cpu")
    assert start(cfg, "lab kl-sweep") == (tmp_path, False)
    state = tmp_path / "beta_0.02" / "train_state.safetensors"
    state.parent.mkdir()
    state.write_bytes(b"weights")
    assert start(replace(cfg, out=f"{tmp_path}/", device="auto"), "lab kl-sweep")[1]   # --out, --device aside
    assert state.exists()
    assert start(replace(cfg, iterations=7), "lab kl-sweep") == (tmp_path, False) and not state.exists()
