import json
import subprocess
import sys

import pytest

from rlhf_lab import cli
from rlhf_lab.tokenizer import BYTES


def test_help_lists_every_stage(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in ("sft", "train-rm", "eval-rm", "ppo", "eval", "sample", "pipeline", "world", "lab"):
        assert command in out


def test_version_names_the_installed_package(capsys):
    from importlib.metadata import version
    with pytest.raises(SystemExit) as stopped:
        cli.main(["--version"])
    assert stopped.value.code == 0 and capsys.readouterr().out.strip() == f"rlhf-lab {version('rlhf-lab')}"


@pytest.mark.parametrize("argv", [["--help"], ["lab", "--help"]])
def test_help_of_the_command_list_does_not_wait_for_torch(argv):
    script = ("import sys\nfrom rlhf_lab import cli\ntry:\n    cli.main(sys.argv[1:])\n"
              "except SystemExit:\n    print('torch' in sys.modules)")
    shown = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, check=True)
    assert shown.stdout.strip().endswith("False")


def test_flags_come_from_the_dataclass_with_their_comments(capsys):
    with pytest.raises(SystemExit):
        cli.main(["ppo", "--help"])
    out = capsys.readouterr().out
    assert "--kl-coef" in out and "InstructGPT" in out and "(default: 0.1)" in out
    assert "(default: shipped (the SFT checkpoint in the package))" in " ".join(out.split())       # not its install path


def test_a_comment_line_below_a_field_continues_its_help_and_a_stated_default_is_not_repeated():
    from rlhf_lab.evaluate import EvalConfig
    from rlhf_lab.reward import RewardEvalConfig
    assert "cuts the prompt's oldest bytes" in cli.field_comments(RewardEvalConfig)["overflow"]
    assert cli.field_comments(EvalConfig)["split"].endswith('(or "train", or "textbook": the six textbook prompts)')
    parser = cli.build_parser({"eval-rm": cli.COMMANDS["eval-rm"]})
    help_text = " ".join(parser._subparsers._group_actions[0].choices["eval-rm"].format_help().split())
    assert "(default: <rm>/eval)" in help_text and "(default: )" not in help_text


def test_every_command_renders_its_help():
    parser = cli.build_parser()
    for name in cli.COMMANDS:
        group, _, leaf = name.rpartition(" ")
        parsers = parser._subparsers._group_actions[0].choices
        command = (parsers[group]._subparsers._group_actions[0].choices if group else parsers)[leaf]
        assert "--help" in command.format_help()       # a "%" in a field's comment once broke this


def test_unknown_flag_is_an_error(capsys):
    with pytest.raises(SystemExit):
        cli.main(["sft", "--no-such-flag", "1"])
    assert "unrecognized arguments" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["sft", "train-rm", "ppo", "pipeline"])
def test_an_unknown_precision_is_refused_before_any_run_directory_is_written(tmp_path, capsys, command):
    code = cli.main([command, "--precision", "fp16", "--out", str(tmp_path / "run"), "--device", "cpu"])
    assert code == 2
    assert "--precision must be one of fp32, bf16" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command, flags, message", [
    ("sft", ["--steps", "0"], "--steps must be positive; got 0"),
    ("train-rm", ["--epochs", "0"], "--epochs must be positive; got 0"),
    ("train-rm", ["--grad-clip", "0"], "--grad-clip must be positive; got 0.0"),   # a zero clip freezes training
    ("train-rm", ["--weight-decay", "-1"], "--weight-decay must be at least 0"),
    ("ppo", ["--vf-coef", "-1"], "--vf-coef must be at least 0"),
    ("ppo", ["--eos-penalty", "-5"], "--eos-penalty must be at least 0"),
    ("ppo", ["--kl-coef", "-0.1"], "--kl-coef must be at least 0; got -0.1"),
    ("ppo", ["--lam", "1.5"], "--lam must be in [0, 1]; got 1.5"),
    ("ppo", ["--clip-eps", "1.5"], "--clip-eps must be below 1; got 1.5"),
    ("ppo", ["--advantage", "rloo", "--samples-per-prompt", "4", "--lam", "0.9"], "--lam tunes the critic and GAE"),
    ("ppo", ["--kl-horizon", "5000"], "--kl-horizon paces the adaptive β of --kl-target"),
    ("ppo", ["--overflow", "skip"], "--overflow says what to do with a file's bad or long rows, and no file"),
    ("train-rm", ["--context-len", "300"], "--context-len sizes a fresh trunk (--from-scratch)"),
    ("sft", ["--data", "x.jsonl", "--examples", "10"], "--data x.jsonl brings its own examples; --examples shapes"),
    ("train-rm", ["--data", "x.jsonl", "--pairs", "10"], "--data x.jsonl brings its own examples; --pairs shapes"),
    ("ppo", ["--advantage", "rloo"], "--samples-per-prompt must be ≥ 2"),
    ("ppo", ["--samples-per-prompt", "3"], "--batch-size must be a multiple of --samples-per-prompt"),
    ("ppo", ["--reward", "oracle"], "--reward must be one of model, gold"),
    ("pipeline", ["--kl-coef", "-1"], "--kl-coef must be at least 0"),
    ("pipeline", ["--advantage", "rloo"], "--samples-per-prompt must be ≥ 2"),
    ("eval", ["--samples-per-prompt", "0"], "--samples-per-prompt must be positive"),
    ("eval", ["--temperature", "-0.5"], "--temperature must be at least 0"),
    ("eval", ["--temperature", "1e-40"], "--temperature must be 0 (greedy) or at least 0.001; got 1e-40"),
    ("ppo", ["--kl-target", "6", "--kl-coef", "0"], "--kl-target adapts β by multiplying it"),
    ("sft", ["--context-len", "128"], "--context-len must be at least 243: the world's examples need"),
    ("train-rm", ["--from-scratch", "--context-len", "64"], "--context-len must be at least 243"),
    ("sft", ["--n-heads", "3"], "--width must be a multiple of --n-heads; got 128 and 3"),
    ("sft", ["--lr", "nan"], "--lr must be a finite number; got nan"),
    ("sft", ["--lr", "inf"], "--lr must be a finite number; got inf"),           # inf passes "positive"
    ("sft", ["--seed", "99999999999999999999999"], "--seed must be in [0, 2**32)"),
    ("train-rm", ["--world-seed", "-1"], "--world-seed must be in [0, 2**32)"),
    ("ppo", ["--entropy-coef", "nan"], "--entropy-coef must be a finite number; got nan"),
    ("ppo", ["--kl-coef", "inf"], "--kl-coef must be a finite number; got inf"),
    ("pipeline", ["--entropy-coef", "inf"], "--entropy-coef must be a finite number"),
    ("eval", ["--temperature", "inf"], "--temperature must be a finite number; got inf"),
    ("train-rm", ["--norm-samples", "1"], "--norm-samples must be at least 2"),   # a std needs two answers
    ("train-rm", ["--responses-per-prompt", "1"], "--responses-per-prompt must be in [2, 7]; got 1"),
    ("train-rm", ["--sft", ""], "--sft is empty; give a run directory or file"),
    ("ppo", ["--sft", ""], "--sft is empty; give a run directory or file"),
    ("eval", ["--policy", "no/such/ppo"], "--policy no/such/ppo: no such run directory or file"),
    ("ppo", ["--rm", "no/such/rm"], "--rm no/such/rm: no such run directory or file"),
    ("sft", ["--init", "no/such/model"], "--init no/such/model: no such run directory or file"),
    ("ppo", ["--prompts", "p.jsonl", "--reward", "gold"], "--reward gold judges the world's own prompts"),
    ("ppo", ["--reward", "gold", "--rm", "runs/demo/rm"], "--rm names a reward model, which --reward gold does not"),
    ("ppo", ["--baseline-decay", "0.5"], "--baseline-decay paces the running baseline of --advantage baseline; "
                                         "--advantage gae subtracts none: drop it"),
    ("train-rm", ["--ensemble-std-coef", "1"], "--ensemble-std-coef weighs the spread of an ensemble's members, "
                                               "and --ensemble 1 has one: drop it"),
    ("train-rm", ["--heldout-share", "0.2"], "--heldout-share holds out validation pairs"),
    ("train-rm", ["--data", "x.jsonl", "--eval-data", "y.jsonl", "--heldout-share", "0.2"],
     "--heldout-share holds out validation pairs"),
    ("sft", ["--heldout-share", "0.2"], "--heldout-share holds out a --data file's prompts"),
    ("sft", ["--data", "x.jsonl", "--eval-data", "y.jsonl", "--heldout-share", "0"],
     "--heldout-share holds out a --data file's prompts"),
    ("lab overoptimization", ["--ensemble-std-coef", "2"], "--ensemble-std-coef weighs the spread"),
])
def test_an_impossible_value_is_refused_before_any_run_directory_is_written(tmp_path, capsys, command, flags,
                                                                             message):
    code = cli.main([*command.split(), *flags, "--out", str(tmp_path / "run"), "--device", "cpu"])   # "lab x": two
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_asking_for_cuda_without_one_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    code = cli.main(["sft", "--device", "cuda", "--out", str(tmp_path / "run")])
    assert code == 2
    assert "--device cuda: no CUDA device here" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["sft", "--steps", "1"], ["pipeline"], ["world", "export"], ["lab", "kl-sweep"]])
def test_an_empty_out_is_refused_not_taken_for_the_current_directory(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    assert cli.main([*argv, "--out", "", "--device", "cpu"] if argv[0] != "world" else [*argv, "--out", ""]) == 2
    assert "--out is empty" in capsys.readouterr().err and not list(tmp_path.iterdir())


@pytest.mark.parametrize("argv", [["sft", "--steps", "1"], ["train-rm"], ["pipeline"]])
def test_out_shipped_is_refused_for_every_model_flag_reads_it_as_the_package_checkpoint(tmp_path, capsys,
                                                                                          monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    assert cli.main([*argv, "--out", "shipped", "--device", "cpu"]) == 2
    assert "--out shipped names the shipped checkpoint" in capsys.readouterr().err and not list(tmp_path.iterdir())


def test_a_list_default_is_shown_as_it_would_be_typed(capsys):
    with pytest.raises(SystemExit):
        cli.main(["lab", "kl-sweep", "--help"])
    assert "(default: 0.001 0.02 0.5)" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit):
        cli.main(["ppo", "--help"])
    assert "(default: not given)" in " ".join(capsys.readouterr().out.split())     # --kl-target, not "None"


@pytest.mark.parametrize("device", ["cpu:abc", "auto:1", "gpu"])
def test_a_malformed_device_is_one_clear_line(tmp_path, capsys, device):
    assert cli.main(["sft", "--device", device, "--out", str(tmp_path / "run")]) == 2
    assert f"--device {device!r}: expected auto, cpu, cuda or cuda:N" in capsys.readouterr().err


def test_a_pipeline_never_writes_into_its_sft_model_or_a_hugging_face_one(tmp_path, capsys):
    sft = tmp_path / "sft"
    sft.mkdir()
    assert cli.main(["pipeline", "--sft", str(sft), "--out", str(sft), "--device", "cpu"]) == 2
    assert f"--out {sft} is also --sft" in capsys.readouterr().err and not list(sft.iterdir())
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text('{"model_type": "gpt2"}')
    assert cli.main(["pipeline", "--out", str(hf), "--device", "cpu"]) == 2
    assert f"--out {hf} holds a Hugging Face model" in capsys.readouterr().err
    assert (hf / "config.json").read_text() == '{"model_type": "gpt2"}'


def test_an_unwritable_place_is_one_clear_line(tmp_path, capsys, monkeypatch):
    from rlhf_lab import world

    def export(cfg):
        raise PermissionError(13, "Permission denied", cfg.out)
    monkeypatch.setattr(world, "export_main", export)
    assert cli.main(["world", "export", "--out", str(tmp_path / "x")]) == 2
    assert "rlhf: error: [Errno 13] Permission denied" in capsys.readouterr().err


def test_a_json_file_that_is_not_utf8_is_a_config_error(tmp_path):
    from rlhf_lab.run import ConfigError, read_json
    (tmp_path / "config.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(ConfigError, match="not valid JSON \\(invalid UTF-8 at byte 0\\)"):
        read_json(tmp_path / "config.json")


def test_bad_data_file_is_one_clear_line_not_a_traceback(tmp_path, capsys):
    bad = tmp_path / "pairs.jsonl"
    bad.write_text(json.dumps({"prompt": "Q", "chosen": "a", "rejected": "b"}) + "\n{broken\n")
    code = cli.main(["train-rm", "--data", str(bad), "--out", str(tmp_path / "rm"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{bad}:2: malformed JSON" in err and "Traceback" not in err
    assert not (tmp_path / "rm").exists()


@pytest.mark.parametrize("kind", ["directory", "not gzip", "cut-off gzip"])
def test_a_data_path_that_is_no_jsonl_file_is_one_clear_line(tmp_path, capsys, kind):
    import gzip
    path = tmp_path / ("pairs" if kind == "directory" else "pairs.jsonl.gz")
    if kind == "directory":
        path.mkdir()
    else:
        whole = gzip.compress(b'{"prompt": "Q", "chosen": "a", "rejected": "b"}\n' * 50)
        path.write_bytes(b"plain text" if kind == "not gzip" else whole[:len(whole) // 2])
    code = cli.main(["train-rm", "--data", str(path), "--out", str(tmp_path / "rm"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"rlhf: error: {path}") and "Traceback" not in err
    assert ("a directory" if kind == "directory" else "not a readable gzip file") in err


def test_train_rm_on_a_file_without_a_held_out_file_reports_what_it_can(tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"Q{i}?", "chosen": "yes", "rejected": "no, no", "group": i // 3})
                             + "\n" for i in range(4)))
    code = cli.main(["train-rm", "--data", str(pairs), "--out", str(tmp_path / "rm"), "--batch-size", "2",
                     "--epochs", "1", "--norm-samples", "4", "--device", "cpu", "--heldout-share", "0"])
    assert code == 0
    out = capsys.readouterr().out
    assert "no held-out set: --eval-data FILE or --heldout-share" in out
    assert '4 pairs in 2 groups by their "group" key; a step takes 2 groups (--batch-size)' in out
    metrics = json.loads((tmp_path / "rm" / "metrics.json").read_text())
    assert "train_accuracy" in metrics and metrics["textbook_pairs_correct"] in range(7)
    assert "heldout_accuracy" not in metrics
    assert metrics["data_files"][str(pairs)]["rows_loaded"] == 4


def test_train_rm_calibrate_fits_a_temperature_on_the_files_validation_pairs_and_saves_it(tmp_path):
    from rlhf_lab.reward import load_reward_model
    pairs = tmp_path / "pairs.jsonl"
    answers = ("yes", "no, no")     # annotators who prefer "yes" three times in four: no model is always right
    pairs.write_text("".join(json.dumps({"prompt": f"Q{i}?", "chosen": answers[i % 4 == 0],
                                         "rejected": answers[i % 4 != 0]}) + "\n" for i in range(80)))
    code = cli.main(["train-rm", "--data", str(pairs), "--out", str(tmp_path / "rm"), "--batch-size", "4",
                     "--epochs", "1", "--norm-samples", "4", "--device", "cpu", "--calibrate"])
    assert code == 0
    metrics = json.loads((tmp_path / "rm" / "metrics.json").read_text())
    temperature = metrics["calibration_temperature"]
    assert temperature > 0 and temperature != 1.0 and "heldout_accuracy" in metrics
    assert load_reward_model(tmp_path / "rm").temperature.item() == pytest.approx(temperature)


def test_a_from_scratch_reward_model_with_a_longer_context_than_the_sft_model_normalises(tmp_path):
    pairs = tmp_path / "pairs.jsonl"      # prompts too long for the shipped SFT model's 256-byte context
    pairs.write_text("".join(json.dumps({"prompt": f"{'context ' * 36}Q{i}?", "chosen": "yes", "rejected": "no, no"})
                             + "\n" for i in range(4)))
    code = cli.main(["train-rm", "--from-scratch", "--context-len", "320", "--data", str(pairs), "--out",
                     str(tmp_path / "rm"), "--batch-size", "2", "--epochs", "1", "--norm-samples", "4",
                     "--device", "cpu"])
    assert code == 0
    from rlhf_lab.reward import load_reward_model
    scale = load_reward_model(tmp_path / "rm").scale.item()
    assert 0 < scale < float("inf")


def test_world_export_writes_loadable_files(tmp_path):
    from rlhf_lab.data import load
    assert cli.main(["world", "export", "--out", str(tmp_path)]) == 0
    pairs, _ = load(tmp_path / "textbook_pairs.jsonl", "preference", BYTES, 256)
    assert len(pairs) == 6
    sft, _ = load(tmp_path / "sft_train.jsonl", "sft", BYTES, 256)
    assert len(sft) > 1000


def test_eval_rm_can_skip_bad_rows_of_a_file(tmp_path, capsys):
    import torch
    from reference import TINY
    from rlhf_lab.model import MiniGPT
    from rlhf_lab.reward import RewardModel, save_reward_model
    torch.manual_seed(0)
    save_reward_model(tmp_path / "model.safetensors", [RewardModel(MiniGPT(TINY))], 0.0)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "Q", "chosen": "", "rejected": "b"}) + "\n"
                     + json.dumps({"prompt": "Q", "chosen": "a", "rejected": "bb"}) + "\n")
    args = ["eval-rm", "--rm", str(tmp_path), "--data", str(pairs), "--out", str(tmp_path / "eval"), "--device", "cpu"]
    assert cli.main(args) == 2
    assert f"{pairs}:1: \"chosen\" is empty" in capsys.readouterr().err
    assert cli.main(args + ["--on-invalid", "skip"]) == 0
    assert "1 rows loaded, skipped: 1 \"chosen\" is empty" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["heldout_pairs"] == 1 and (tmp_path / "eval" / "reliability.png").exists()
    config = json.loads((tmp_path / "eval" / "config.json").read_text())
    assert (config["stage"], config["rm"], config["data"]) == ("eval-rm", str(tmp_path), str(pairs))
    assert metrics["data_files"] == {str(pairs): {"rows_loaded": 1, "rows_skipped": {'"chosen" is empty': 1},
                                                  "prompts_truncated": 0}}


def test_eval_rm_gives_the_figures_per_subset_of_a_file_that_pools_sources(tmp_path, capsys):
    import torch
    from reference import TINY
    from rlhf_lab.model import MiniGPT
    from rlhf_lab.reward import RewardModel, save_reward_model
    torch.manual_seed(0)
    save_reward_model(tmp_path / "model.safetensors", [RewardModel(MiniGPT(TINY))], 0.0)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": "Q", "chosen": "a" * (i + 1), "rejected": "b", "subset": s,
                                         "kind": "k"}) + "\n" for i, s in enumerate("xxy")))
    args = ["eval-rm", "--rm", str(tmp_path), "--data", str(pairs), "--out", str(tmp_path / "eval"), "--device", "cpu"]
    assert cli.main(args) == 0
    assert "== by subset" in capsys.readouterr().out
    by_subset = json.loads((tmp_path / "eval" / "metrics.json").read_text())["by_subset"]
    assert {k: v["pairs"] for k, v in by_subset.items()} == {"x": 2, "y": 1}
    assert cli.main(args + ["--per", "kind"]) == 0
    assert "by_kind" in json.loads((tmp_path / "eval" / "metrics.json").read_text())
    capsys.readouterr()
    assert cli.main(args + ["--per", "split"]) == 0              # a key no row has: a note, not an empty record
    assert ('--per split: no row of {} gives "split" a value, so there are no figures per value (other keys of its '
            "rows: kind, subset)".format(pairs)) in capsys.readouterr().out
    assert "by_split" not in json.loads((tmp_path / "eval" / "metrics.json").read_text())
    with pairs.open("a") as f:
        f.write(json.dumps({"prompt": "Q", "chosen": "c", "rejected": "b", "subset": ["x"]}) + "\n")
    assert cli.main(args) == 2
    assert f'{pairs}:4: "subset" must be a string, a number or a boolean to group rows by (--per), got array' in \
        capsys.readouterr().err


def test_a_reward_model_where_a_language_model_belongs_is_one_clear_line(tmp_path, capsys):
    import torch
    from reference import TINY
    from rlhf_lab.model import MiniGPT
    from rlhf_lab.reward import RewardModel, save_reward_model
    from rlhf_lab.run import save_model
    torch.manual_seed(0)
    (tmp_path / "rm").mkdir(), (tmp_path / "lm").mkdir()
    save_reward_model(tmp_path / "rm" / "model.safetensors", [RewardModel(MiniGPT(TINY))], 0.0)
    save_model(tmp_path / "lm" / "model.safetensors", MiniGPT(TINY))
    swapped = ["--sft", str(tmp_path / "rm"), "--rm", str(tmp_path / "lm"), "--device", "cpu"]
    assert cli.main(["eval", "--policy", str(tmp_path / "rm"), *swapped, "--out", str(tmp_path / "e")]) == 2
    assert "holds a reward model; expected a language model" in capsys.readouterr().err
    assert cli.main(["eval-rm", "--rm", str(tmp_path / "lm"), "--out", str(tmp_path / "e2"), "--device", "cpu"]) == 2
    assert "holds a language model, not a reward model" in capsys.readouterr().err
    assert cli.main(["eval-rm", "--rm", str(tmp_path / "rm"), "--out", str(tmp_path / "rm"), "--device", "cpu"]) == 2
    assert f"--out {tmp_path / 'rm'} is also --rm" in capsys.readouterr().err   # its report would overwrite the run's


def test_unreadable_checkpoints_configs_and_mismatched_models_are_one_clear_line(tmp_path, capsys):
    import dataclasses
    import torch
    from reference import TINY
    from rlhf_lab.model import MiniGPT
    from rlhf_lab.reward import RewardModel, save_reward_model
    from rlhf_lab.run import save_model
    torch.manual_seed(0)
    (tmp_path / "sft").mkdir(), (tmp_path / "broken").mkdir()
    save_model(tmp_path / "sft" / "model.safetensors", MiniGPT(TINY))
    shorter = dataclasses.replace(TINY, context_len=32)
    save_reward_model(tmp_path / "rm32" / "model.safetensors", [RewardModel(MiniGPT(shorter))], 0.0)
    (tmp_path / "broken" / "model.safetensors").write_text('{"prompt": "not a checkpoint"}')
    cases = [
        (["eval-rm", "--rm", str(tmp_path / "broken")], "not a readable safetensors checkpoint"),
        (["ppo", "--sft", str(tmp_path / "sft"), "--rm", str(tmp_path / "rm32"), "--advantage", "rloo",
          "--samples-per-prompt", "2", "--iterations", "1"], "reads 32 tokens, but the policy"),
        (["sft", "--out", str(tmp_path / "sft" / "model.safetensors")], "is a file; a run directory is needed"),
    ]
    for argv, message in cases:
        assert cli.main([*argv, "--device", "cpu"] + (["--out", str(tmp_path / "o")] if "--out" not in argv else [])) == 2
        assert message in capsys.readouterr().err
    (tmp_path / "o" / "config.json").parent.mkdir(exist_ok=True)
    (tmp_path / "o" / "config.json").write_text("{")
    (tmp_path / "o" / "train_state.safetensors").write_bytes(b"")
    assert cli.main(["sft", "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2
    assert "config.json:1: not valid JSON" in capsys.readouterr().err


def test_a_train_state_or_a_short_context_model_where_a_model_belongs_is_one_clear_line(tmp_path, capsys):
    import torch
    from reference import TINY
    from rlhf_lab.model import MiniGPT
    from rlhf_lab.run import save_model, save_train_state
    model = MiniGPT(TINY)                                   # context 64: too short for the world's examples
    (tmp_path / "sft").mkdir()
    save_model(tmp_path / "sft" / "model.safetensors", model)
    save_train_state(tmp_path / "state.safetensors", {"model": model}, torch.optim.AdamW(model.parameters()), 1)
    cases = [(["eval", "--policy", str(tmp_path / "state.safetensors"), "--sft", str(tmp_path / "sft"),
               "--rm", str(tmp_path / "sft")], "records no model architecture"),
             (["train-rm", "--sft", str(tmp_path / "sft")], f"{tmp_path / 'sft'}: a context of 64 tokens; the world's")]
    for argv, message in cases:
        assert cli.main([*argv, "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2
        assert message in capsys.readouterr().err


def test_world_export_refuses_impossible_sizes_and_a_file_for_its_directory(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    assert cli.main(["world", "export", "--out", str(tmp_path / "afile")]) == 2
    assert "is a file; a directory is needed" in capsys.readouterr().err
    assert cli.main(["world", "export", "--out", str(tmp_path / "w"), "--sft-examples", "-5"]) == 2
    assert "--sft-examples must be in [1, 1000000]; got -5" in capsys.readouterr().err
    assert cli.main(["world", "export", "--out", str(tmp_path / "w"), "--train-pairs", "1000000000"]) == 2
    assert "--train-pairs must be in [1, 1000000]; got 1000000000" in capsys.readouterr().err   # not minutes of silence


def test_ctrl_c_is_one_line_that_says_how_to_continue(monkeypatch, capsys):
    def interrupted(cfg):
        raise KeyboardInterrupt
    monkeypatch.setattr("rlhf_lab.sft.main", interrupted)
    assert cli.main(["sft", "--out", "unused"]) == 130
    err = capsys.readouterr().err
    assert "interrupted; run the same command again to continue a training stage, pipeline or lab" in err
    assert "Traceback" not in err


def test_eval_compares_the_policy_with_the_sft_model_and_reward_model_it_was_trained_with(tmp_path):
    from rlhf_lab.evaluate import EvalConfig
    from rlhf_lab.run import SHIPPED, write_json
    write_json(tmp_path / "ppo" / "config.json", {"stage": "ppo", "sft": "my/sft", "rm": "my/rm"})
    recorded = EvalConfig(policy=str(tmp_path / "ppo")).with_policy_defaults()
    assert (recorded.sft, recorded.rm) == ("my/sft", "my/rm")
    given = EvalConfig(policy=str(tmp_path / "ppo"), sft="other/sft").with_policy_defaults()
    assert (given.sft, given.rm) == ("other/sft", "my/rm")
    unrecorded = EvalConfig(policy=str(tmp_path / "elsewhere")).with_policy_defaults()
    assert (unrecorded.sft, unrecorded.rm, unrecorded.world_seed) == (SHIPPED, "runs/rm", 0)
    write_json(tmp_path / "ppo3" / "config.json", {"stage": "ppo", "world_seed": 3})   # trained in another world
    assert EvalConfig(policy=str(tmp_path / "ppo3")).with_policy_defaults().world_seed == 3
    assert EvalConfig(policy=str(tmp_path / "ppo3"), world_seed=1).with_policy_defaults().world_seed == 1


def test_eval_never_writes_over_the_run_it_judges_nor_into_the_package(tmp_path, capsys):
    from rlhf_lab.run import read_json, write_json
    write_json(tmp_path / "ppo" / "config.json", {"stage": "ppo"})
    assert cli.main(["eval", "--policy", str(tmp_path / "ppo"), "--out", str(tmp_path / "ppo"), "--device", "cpu"]) == 2
    assert "is also --policy: a run must not write over a model it reads" in capsys.readouterr().err
    assert read_json(tmp_path / "ppo" / "config.json") == {"stage": "ppo"}
    assert cli.main(["eval", "--policy", "shipped", "--device", "cpu"]) == 2
    assert "--policy shipped: give --out" in capsys.readouterr().err


def test_a_prompt_in_another_encoding_than_utf8_is_a_clear_error():
    from rlhf_lab.run import ConfigError
    from rlhf_lab.sample import SampleConfig
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        SampleConfig(prompts=["caf\udce9?"]).validate()        # b"caf\xe9?" from argv, as Python decodes it


def test_world_show_answers_each_prompt_in_every_style_with_ideal_on_top(capsys):
    from rlhf_lab.world import STYLES, ShowConfig, show_main
    rows = show_main(ShowConfig(prompts=3, seed=1))
    assert len(rows) == 3 * len(STYLES)
    for i in range(0, len(rows), len(STYLES)):
        scores = {r["style"]: r["gold"] for r in rows[i:i + len(STYLES)]}
        assert scores["ideal"] == max(scores.values()) == 1.0
    assert rows[0]["prompt"] in capsys.readouterr().out


def test_world_judge_shows_every_term_and_names_an_unknown_prompt(capsys):
    assert cli.main(["world", "judge", "--prompt", "What is the capital of France?",
                     "--response", "It might be Paris, I think."]) == 0
    out = capsys.readouterr().out
    assert "hedged             True" in out and "style              hedging" in out
    assert cli.main(["world", "judge", "--prompt", "Not a prompt of the world?"]) == 2
    assert "unknown prompt" in capsys.readouterr().err


def test_the_final_table_gives_each_record_of_records_a_row_and_prints_an_empty_one_as_none():
    from rlhf_lab.evaluate import table
    text = table("run", {"loss": 0.5, "mix": {"a": 0.25},
                         "data_files": {"f.jsonl": {"rows_loaded": 3, "rows_skipped": {}}, "g.jsonl": {}}})
    assert text.splitlines() == ["== run", "loss                0.500", "mix                 a 0.250",
                                 "data_files.f.jsonl  rows_loaded 3, rows_skipped none",
                                 "data_files.g.jsonl  none"]


def test_a_checkpoint_missing_a_tensor_or_holding_nan_weights_is_one_clear_line_naming_the_file(tmp_path, capsys):
    import torch
    from reference import TINY
    from rlhf_lab.model import MiniGPT
    from rlhf_lab.reward import RewardModel, save_reward_model
    from rlhf_lab.run import architecture, save_model, save_tensors
    torch.manual_seed(0)
    model = MiniGPT(TINY)
    weights = model.state_dict()
    del weights["ln_final.weight"]
    save_tensors(tmp_path / "cut" / "model.safetensors", weights, architecture(model))
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    save_model(tmp_path / "nan" / "model.safetensors", model)
    save_reward_model(tmp_path / "nan_rm" / "model.safetensors", [RewardModel(model)], 0.0)
    cases = [(["sample", "--models", str(tmp_path / "cut")], 'Missing key(s) in state_dict: "ln_final.weight"'),
             (["sample", "--models", str(tmp_path / "nan")], "NaN or infinite weights (token_embedding.weight)"),
             (["eval-rm", "--rm", str(tmp_path / "nan_rm"), "--out", str(tmp_path / "e")], "a run that diverged")]
    for argv, message in cases:
        assert cli.main([*argv, "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"rlhf: error: {tmp_path / argv[2]}") and message in err


@pytest.mark.parametrize("argv", [["eval", "--device", "cpu"], ["eval-rm", "--rm", ".", "--device", "cpu"],
                                  ["pipeline", "--device", "cpu"], ["world", "export"]])
@pytest.mark.parametrize("inside", [False, True])
def test_an_out_that_is_a_file_or_lies_inside_one_is_refused_before_any_work(tmp_path, capsys, monkeypatch, argv,
                                                                             inside):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("")
    out = tmp_path / "afile" / "sub" if inside else tmp_path / "afile"
    assert cli.main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert (f"--out {out}: {tmp_path / 'afile'} is a file" if inside else f"--out {out} is a file;") in err
    assert "Errno" not in err


def test_pipeline_without_the_asked_for_gpu_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert cli.main(["pipeline", "--device", "cuda", "--out", str(tmp_path / "run")]) == 2
    assert "--device cuda: no CUDA device here" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_eval_given_a_reward_model_as_the_policy_says_so_before_looking_for_rm(tmp_path, capsys, monkeypatch):
    import torch
    from reference import TINY
    from rlhf_lab.model import MiniGPT
    from rlhf_lab.reward import RewardModel, save_reward_model
    from rlhf_lab.run import SHIPPED_SFT, write_json
    monkeypatch.chdir(tmp_path)                                  # no runs/rm here, the --rm it would default to
    torch.manual_seed(0)
    save_reward_model(tmp_path / "rm" / "model.safetensors", [RewardModel(MiniGPT(TINY))], 0.0)
    write_json(tmp_path / "rm" / "config.json", {"stage": "train-rm", "sft": SHIPPED_SFT})
    assert cli.main(["eval", "--policy", "rm", "--device", "cpu"]) == 2
    assert "rm/model.safetensors holds a reward model; expected a language model" in capsys.readouterr().err
