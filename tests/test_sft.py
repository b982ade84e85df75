import json
from dataclasses import replace

import pytest
import torch

from rlhf_lab import evaluate, tokenizer
from rlhf_lab.model import GPTConfig, MiniGPT
from rlhf_lab.run import ConfigError, load_model
from rlhf_lab.sft import SFTConfig, batch_indices, make_batch, mean_tokens_per_batch, response_loss, train_sft
from rlhf_lab.world import World
from rlhf_lab.tokenizer import BYTES


def tiny(out, **kw):
    world = {} if kw.get("data") else dict(examples=64, eval_samples=8)   # --data refuses the world's options
    return SFTConfig(out=str(out), steps=6, batch_size=8, eval_every=3, width=32, n_layers=1, n_heads=2, ffn=64,
                     device="cpu", **world, **kw)


def test_loss_covers_response_and_eos_only():
    inputs, targets = make_batch(BYTES, [BYTES.encode_pair("ab", "cd"), BYTES.encode_pair("x", "y")], "cpu")
    # row 0: BOS a b SEP c d EOS → the targets of inputs BOS a b SEP c d are _ _ _ c d EOS
    assert targets[0].tolist() == [-100, -100, -100, ord("c"), ord("d"), tokenizer.EOS]
    assert targets[1].tolist() == [-100, -100, ord("y"), tokenizer.EOS, -100, -100]


def test_response_loss_equals_cross_entropy_over_response_positions():
    torch.manual_seed(0)
    model = MiniGPT(GPTConfig(context_len=32, width=16, n_layers=1, n_heads=2, ffn=32))
    tokens, start = BYTES.encode_pair("ab", "cd")
    inputs, targets = make_batch(BYTES, [(tokens, start)], "cpu")
    logp = torch.log_softmax(model(inputs), -1)[0]
    by_hand = -sum(logp[t - 1, tokens[t]] for t in range(start, len(tokens))) / (len(tokens) - start)
    assert torch.isclose(response_loss(model, inputs, targets), by_hand)


def test_eval_loss_is_the_mean_over_tokens_whatever_the_batches():
    from rlhf_lab.sft import eval_loss
    torch.manual_seed(0)
    model = MiniGPT(GPTConfig(context_len=64, width=16, n_layers=1, n_heads=2, ffn=32))
    encoded = [BYTES.encode_pair("Q?", answer) for answer in ("a", "bb", "a much longer answer than the rest")]
    whole = eval_loss(model, encoded, "cpu", batch_size=64)                       # one batch: the plain mean
    assert eval_loss(model, encoded, "cpu", batch_size=2) == pytest.approx(whole, rel=1e-5)   # a last batch of one
    assert whole == pytest.approx(response_loss(model, *make_batch(BYTES, encoded, "cpu")).item(), rel=1e-6)


def test_with_a_fixed_token_count_every_token_weighs_the_same_in_any_batch():
    # a short answer batched alone and beside a long one must pull as hard either way;
    # a batch's own mean would weigh it by 1/(tokens in its batch)
    torch.manual_seed(0)
    model = MiniGPT(GPTConfig(context_len=64, width=16, n_layers=1, n_heads=2, ffn=32))
    short, long = BYTES.encode_pair("ab", "c"), BYTES.encode_pair("ab", "a much longer answer")
    loss = lambda rows, per_batch: response_loss(model, *make_batch(BYTES, rows, "cpu"), per_batch)
    assert torch.isclose(loss([short, long], 10.0), loss([short], 10.0) + loss([long], 10.0))
    assert not torch.isclose(loss([short, long], None), (loss([short], None) + loss([long], None)) / 2)
    assert mean_tokens_per_batch([short, long], 4) == 4 * (2 + 21) / 2


def test_batches_are_a_function_of_seed_and_step():
    lengths = list(range(100))
    assert batch_indices(lengths, 8, 0, 5) == batch_indices(lengths, 8, 0, 5)
    assert batch_indices(lengths, 8, 0, 5) != batch_indices(lengths, 8, 1, 5)
    pool = sum((batch_indices(lengths, 8, 0, s) for s in range(4)), [])
    assert sorted(pool, key=lambda i: lengths[i]) == pool      # one pool, cut in length order


def test_tiny_sft_run_writes_its_run_directory_and_is_deterministic(tmp_path):
    metrics = [train_sft(tiny(tmp_path / name)) for name in ("a", "b")]
    for key in ("well_formed_rate", "style_mix", "gold_mean", "eval_loss", "style_mix_gap"):
        assert key in metrics[0]
    assert {k: v for k, v in metrics[0].items() if k != "wall_seconds"} == \
           {k: v for k, v in metrics[1].items() if k != "wall_seconds"}
    run = tmp_path / "a"
    for name in ("config.json", "metrics.jsonl", "metrics.json", "model.safetensors", "sft_loss.png"):
        assert (run / name).exists()
    assert json.loads((run / "config.json").read_text())["stage"] == "sft"
    assert load_model(run).config.width == 32


def test_sft_samples_as_many_answers_as_asked_even_beyond_the_held_out_prompts(tmp_path):
    prompts = len(World().prompts("heldout_prompt"))
    metrics = train_sft(replace(tiny(tmp_path / "run"), steps=1, eval_every=1, eval_samples=prompts + 13))
    assert metrics["eval_answers"] == prompts + 13


def test_sft_judges_answers_on_held_out_prompts_and_on_training_prompts(tmp_path, monkeypatch):
    """The style mix is judged twice: on held-out prompts and on prompts spread over the training
    split, where the training mix is the target; style_mix_gap is a mix's largest distance from it."""
    asked, judge = [], evaluate.sample_and_judge

    def recording(model, world, prompts, *rest):
        asked.append(prompts)
        return judge(model, world, prompts, *rest)
    monkeypatch.setattr(evaluate, "sample_and_judge", recording)
    metrics = train_sft(replace(tiny(tmp_path / "run"), steps=1, eval_every=1, eval_samples=40))
    heldout, train = World().prompts("heldout_prompt"), World().prompts("train")
    assert asked[0] == heldout[:40]
    assert len(set(asked[1])) == 40 and set(asked[1]) <= set(train)
    assert asked[1][0] == train[0] and train.index(asked[1][-1]) > 0.95 * len(train)       # spread over the split
    mix = metrics["training_style_mix"]
    for judged in (metrics, metrics["train_prompts"]):
        assert judged["style_mix_gap"] == pytest.approx(
            max(abs(judged["style_mix"][style] - share) for style, share in mix.items()))


def test_sft_on_a_file_reports_no_world_figures(tmp_path):
    """The world's style mix and gold judge say nothing about a file's examples."""
    rows = [{"prompt": f"Say {w}.", "response": w} for w in ("yes", "no", "maybe", "never")]
    path = tmp_path / "sft.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    metrics = train_sft(tiny(tmp_path / "run", data=str(path), eval_data=str(path)))
    assert metrics["eval_loss"] > 0
    assert not {"training_style_mix", "style_mix", "well_formed_rate", "gold_mean", "train_prompts"} & set(metrics)


def test_a_file_without_eval_data_holds_out_a_share_of_its_prompts_the_same_in_every_stage():
    from rlhf_lab.data import PreferencePair, SFTExample, heldout_key, split_heldout

    def sft(prompt):
        return SFTExample(prompt, "answer", heldout_key=heldout_key(prompt))
    rows = [sft(f"prompt {i}") for i in range(1000)] + [sft("prompt 7")]        # a prompt twice: one side
    train, held = split_heldout(rows, 0.1, "f.jsonl")
    assert 70 < len(held) < 130 and len(train) + len(held) == len(rows)
    assert not {r.prompt for r in train} & {r.prompt for r in held}
    assert {r.prompt for r in held} < {r.prompt for r in split_heldout(rows, 0.2, "f.jsonl")[1]}   # nested
    pairs = [PreferencePair(r.prompt, "a", "b", heldout_key=heldout_key(r.prompt)) for r in rows]
    assert [p.prompt for p in split_heldout(pairs, 0.1, "f.jsonl")[1]] == [r.prompt for r in held]
    few = [sft(f"Q{i}?") for i in range(4)]                  # none of whose keys falls below 0.01
    assert [r.prompt for r in split_heldout(few, 0.01, "f.jsonl")[1]] == [min(few, key=lambda r: r.heldout_key).prompt]
    with pytest.raises(ConfigError, match="holding out 1 of its 1001 usable row.s. by prompt leaves nothing to train "
                                          "on; give --eval-data or a smaller --heldout-share"):
        split_heldout(rows, 1.0, "f.jsonl")
    with pytest.raises(ConfigError, match="all have one prompt, which any held-out set takes whole, leaving nothing to "
                                          "train on; give --eval-data$"):      # no smaller share would help
        split_heldout(rows[:1], 0.0, "f.jsonl")


def test_init_starts_from_the_given_model_and_takes_its_shape(tmp_path):
    from rlhf_lab.run import SHIPPED_SFT, ConfigError
    with pytest.raises(ConfigError, match="drop --width, --n-layers, --n-heads, --ffn"):
        tiny(tmp_path / "refused", init=SHIPPED_SFT).validate()
    cfg = SFTConfig(out=str(tmp_path / "continued"), init=SHIPPED_SFT, steps=2, examples=64, batch_size=8,
                    eval_every=2, eval_samples=8, lr=1e-7, device="cpu")
    train_sft(cfg)
    shipped, continued = load_model(SHIPPED_SFT).state_dict(), load_model(tmp_path / "continued").state_dict()
    assert shipped.keys() == continued.keys()
    assert all(torch.allclose(shipped[k], continued[k], atol=1e-5) for k in shipped)   # two tiny steps from it
    assert any(not torch.equal(shipped[k], continued[k]) for k in shipped)              # and trained


def test_a_file_of_examples_refuses_the_worlds_options(tmp_path):
    """--examples or --ideal-share with --data would act on nothing, yet be recorded as if they had."""
    with pytest.raises(ConfigError, match=r"--data x.jsonl brings its own examples; --ideal-share, --examples shape"):
        SFTConfig(data="x.jsonl", examples=10, ideal_share=0.5).validate()
    SFTConfig(data="x.jsonl").validate()
    SFTConfig(examples=10, ideal_share=0.5).validate()


def test_a_run_that_diverges_stops_with_the_step_and_saves_no_model(tmp_path):
    path = tmp_path / "sft.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"Say {w}.", "response": w}) + "\n" for w in ("yes", "no")))
    with pytest.raises(ConfigError, match=r"sft step \d: the gradient norm is (nan|inf).*--lr"):
        train_sft(tiny(tmp_path / "run", data=str(path), eval_data=str(path), lr=1e30, warmup=1))
    assert not (tmp_path / "run" / "model.safetensors").exists()
