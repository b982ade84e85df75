"""Hugging Face TRL half of the side-by-side benchmark.

Every model is GPT-2 built from a config shaped like our MiniGPT default (byte vocab 260,
width 128, 4 layers, 4 heads, feed-forward 512, context 256), so nothing comes from the hub.
Figures:
  trl_reward_pairs_per_sec   RewardTrainer training, preference pairs / s
  trl_ppo_episodes_per_sec   PPOTrainer (trl.experimental.ppo), episodes / s
  hf_generate_tokens_per_sec model.generate sampling, new tokens / s
  matmul_gflops              plain fp32 torch.matmul on the model's shapes, the machine's ceiling

Pins (the `[bench]` extra): trl==1.12.0 (the last release with PPOTrainer), transformers==5.24.0,
accelerate==1.15.0, datasets==5.2.0; torch stays as installed.

Deviations from TRL's defaults, so both sides run the same work:
  (1) fp32 and no gradient checkpointing unless asked (TRL defaults to bf16 + checkpointing);
  (2) pre-tokenized data, so RewardTrainer appends no EOS and PPO prompts carry no template;
  (3) PPO runs without stop token, EOS penalty or sample generations: every response is
      exactly `response_length` tokens, matching our rollout.
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # any hub lookup fails loudly instead of downloading
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import argparse  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers  # noqa: E402
from transformers import (  # noqa: E402
    GPT2Config,
    GPT2ForSequenceClassification,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
    PrinterCallback,
    TrainerCallback,
    set_seed,
)

from benchmarks.ours import sync  # noqa: E402

# transformers 5 renamed gradient_checkpointing to activation_checkpointing; the old name still works
# and also works with transformers 4, so keep it and drop the notice
warnings.filterwarnings("ignore", message=".*deprecated and will be removed in v6.*", category=FutureWarning)

BOS, EOS, PAD, SEP = 256, 257, 258, 259
VOCAB = 260

# (M, K, N) of the matmuls in one MiniGPT forward on 32 sequences x 64 tokens, plus a plain square
MODEL_SHAPES = {
    "mlp_up 2048x128@128x512": (2048, 128, 512),
    "attn_out 2048x128@128x128": (2048, 128, 128),
    "qkv 2048x128@128x384": (2048, 128, 384),
    "mlp_down 2048x512@512x128": (2048, 512, 128),
    "lm_head 2048x128@128x260": (2048, 128, 260),
    "square 256x256@256x256": (256, 256, 256),
}


def gpt2_config(**overrides) -> GPT2Config:
    """GPT-2 shaped like MiniGPT; dropout off because neither side trains with it here."""
    cfg = dict(vocab_size=VOCAB, n_embd=128, n_layer=4, n_head=4, n_inner=512, n_positions=256,
               resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
               bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
    return GPT2Config(**{**cfg, **overrides})


def _byte_chars() -> dict[int, str]:
    """GPT-2's reversible byte -> printable char map, so ByteLevel splitting gives one token per byte."""
    keep = {*range(33, 127), *range(161, 173), *range(174, 256)}
    spare = iter(range(256, 512))
    return {b: chr(b) if b in keep else chr(next(spare)) for b in range(256)}


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """Byte tokenizer with our ids (byte b -> id b, specials 256..259); the trainers want a tokenizer object."""
    vocab = {ch: b for b, ch in _byte_chars().items()}
    vocab.update({"<bos>": BOS, "<eos>": EOS, "<pad>": PAD, "<sep>": SEP})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>", sep_token="<sep>", padding_side="left")


def random_bytes(rng: random.Random, n: int, min_len: int, max_len: int) -> list[list[int]]:
    """n byte strings of uniform random length in [min_len, max_len]."""
    return [[rng.randrange(256) for _ in range(rng.randint(min_len, max_len))] for _ in range(n)]


class StepClock(TrainerCallback):
    """Wall time at the end of every optimizer step (RewardTrainer) or PPO iteration (PPOTrainer).

    The gap between two ends covers the whole step: data loading, forward, backward, optimizer
    and the trainer's own bookkeeping, which is what a user waits for.
    """

    def __init__(self, device: str):
        self.device, self.ends = device, []

    def on_step_end(self, args, state, control, **kwargs):
        sync(self.device)
        self.ends.append(time.perf_counter())

    def rate(self, items_per_step: int, warmup: int) -> tuple[float, float]:
        """(items / s, s / step) from the median step after the first `warmup` (allocator, kernel warm-up).

        The median, not the mean, because on a shared 2-core machine another process's burst
        makes a few steps several times slower (OpenMP threads wait on a descheduled peer).
        """
        steps = [b - a for a, b in zip(self.ends[warmup - 1:], self.ends[warmup:])]
        sec_per_step = statistics.median(steps)
        return items_per_step / sec_per_step, sec_per_step


def trl_reward_pairs_per_sec(device="cpu", n_pairs=None, batch_size=32, min_len=60, max_len=200,
                             steps=20, warmup=3, precision="fp32", gradient_checkpointing=False, seed=0) -> dict:
    """RewardTrainer on random-byte pairs; TRL's defaults are bf16 + gradient_checkpointing=True."""
    from trl import RewardConfig, RewardTrainer

    set_seed(seed)
    rng = random.Random(seed)
    n_pairs = n_pairs or batch_size * (warmup + steps)
    data = Dataset.from_dict({"chosen_ids": random_bytes(rng, n_pairs, min_len, max_len),
                              "rejected_ids": random_bytes(rng, n_pairs, min_len, max_len)})
    model = GPT2ForSequenceClassification(gpt2_config(num_labels=1))
    clock = StepClock(device)
    with tempfile.TemporaryDirectory() as out:
        args = RewardConfig(output_dir=out, per_device_train_batch_size=batch_size, max_steps=warmup + steps,
                            bf16=precision == "bf16", gradient_checkpointing=gradient_checkpointing,
                            use_cpu=device == "cpu", seed=seed, save_strategy="no", logging_strategy="no",
                            report_to="none", disable_tqdm=True, dataloader_num_workers=0)
        trainer = RewardTrainer(model=model, args=args, train_dataset=data,
                                processing_class=byte_tokenizer(), callbacks=[clock])
        trainer.train()
    pairs_per_sec, sec_per_step = clock.rate(batch_size, warmup)
    return {"pairs_per_sec": pairs_per_sec, "sec_per_step": sec_per_step, "timed_steps": steps,
            "precision": precision, "gradient_checkpointing": gradient_checkpointing}


def _ppo_models(seed: int):
    """Policy, a reference that is a separate object with the same weights, value and reward models."""
    set_seed(seed)
    policy = GPT2LMHeadModel(gpt2_config())
    ref = GPT2LMHeadModel(gpt2_config())
    ref.load_state_dict(policy.state_dict())
    value = GPT2ForSequenceClassification(gpt2_config(num_labels=1))
    reward = GPT2ForSequenceClassification(gpt2_config(num_labels=1))
    return policy, ref, value, reward


def trl_ppo_episodes_per_sec(device="cpu", batch_size=32, response_length=32, ppo_epochs=4,
                             num_mini_batches=1, iterations=8, warmup=2, seed=0, precision="fp32") -> dict:
    """PPOTrainer, one iteration = rollout of `batch_size` prompts + `ppo_epochs` update epochs.

    TRL sets batch = per_device_train_batch_size * gradient_accumulation_steps and wraps every
    micro-batch in accelerator.accumulate, so num_mini_batches > 1 means one optimizer step per
    `num_mini_batches` micro-batches (TRL's behaviour, kept as is).
    """
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    rng = random.Random(seed)
    prompts = Dataset.from_dict({"input_ids": random_bytes(rng, batch_size * 4, 24, 64)})
    policy, ref, value, reward = _ppo_models(seed)
    clock = StepClock(device)
    with tempfile.TemporaryDirectory() as out:
        args = PPOConfig(output_dir=out, per_device_train_batch_size=batch_size // num_mini_batches,
                         gradient_accumulation_steps=num_mini_batches, num_mini_batches=num_mini_batches,
                         num_ppo_epochs=ppo_epochs, total_episodes=batch_size * (warmup + iterations),
                         response_length=response_length, local_rollout_forward_batch_size=batch_size,
                         num_sample_generations=0, missing_eos_penalty=None, stop_token=None,
                         bf16=precision == "bf16", gradient_checkpointing=False, use_cpu=device == "cpu", seed=seed,
                         save_strategy="no", report_to="none", disable_tqdm=True)
        trainer = PPOTrainer(args=args, processing_class=byte_tokenizer(), model=policy, ref_model=ref,
                             reward_model=reward, value_model=value, train_dataset=prompts,
                             callbacks=[clock])
        trainer.remove_callback(PrinterCallback)  # it prints the metrics dict every iteration
        trainer.train()
    episodes_per_sec, sec_per_iter = clock.rate(batch_size, warmup)
    return {"episodes_per_sec": episodes_per_sec, "sec_per_iteration": sec_per_iter, "timed_iterations": iterations}


def hf_generate_tokens_per_sec(device="cpu", batch_size=32, new_tokens=32, prompt_len=64,
                               repeats=5, seed=0, precision="fp32") -> dict:
    """Sampling with the KV cache; min_new_tokens pins every sequence to `new_tokens` tokens."""
    set_seed(seed)
    model = GPT2LMHeadModel(gpt2_config()).to(device).eval()
    prompts = torch.randint(0, 256, (batch_size, prompt_len), device=device)  # (B, P)
    kwargs = dict(attention_mask=torch.ones_like(prompts), do_sample=True, use_cache=True, top_k=0,
                  max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=PAD)
    seconds = []
    with torch.inference_mode(), torch.autocast(device, torch.bfloat16, enabled=precision == "bf16"):
        model.generate(prompts, **kwargs)  # warm-up, untimed
        for _ in range(repeats):
            sync(device)
            start = time.perf_counter()
            out = model.generate(prompts, **kwargs)  # (B, P + new_tokens)
            sync(device)
            seconds.append(time.perf_counter() - start)
    assert out.shape == (batch_size, prompt_len + new_tokens)
    sec = statistics.median(seconds)
    return {"new_tokens_per_sec": batch_size * new_tokens / sec, "sec_per_call": sec}


def _time_matmul(a, b, iters: int, device: str) -> float:
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        torch.matmul(a, b)
    sync(device)
    return time.perf_counter() - start


def matmul_gflops(shapes=MODEL_SHAPES, device="cpu", repeats=5, min_seconds=0.2, precision="fp32") -> dict:
    """GFLOP/s (2*M*K*N per matmul) in fp32 or bf16, median over repeats of loops lasting about min_seconds."""
    figures, dtype = {}, torch.bfloat16 if precision == "bf16" else torch.float32
    for name, (m, k, n) in shapes.items():
        a, b = torch.randn(m, k, device=device, dtype=dtype), torch.randn(k, n, device=device, dtype=dtype)
        once = max(_time_matmul(a, b, 3, device) / 3, 1e-7)  # also the warm-up
        iters = max(1, int(min_seconds / once))
        runs = [_time_matmul(a, b, iters, device) for _ in range(repeats)]
        figures[name] = 2 * m * k * n * iters / statistics.median(runs) / 1e9
    return figures


def _cpu_ticks() -> tuple[int, int, int]:
    """(busy, total) clock ticks of the whole machine, and ticks this process and its children used."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    t = os.times()
    ours = (t.user + t.system + t.children_user + t.children_system) * os.sysconf("SC_CLK_TCK")
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks), int(ours)


def with_foreign_load(fn, **kwargs) -> tuple[dict, float]:
    """Run fn and return its figures with the share of the machine's CPU used by other processes meanwhile.

    A figure taken while that share is above a few percent is not comparable: on 2 cores one busy
    neighbour can slow an OpenMP matmul tenfold.
    """
    busy0, total0, ours0 = _cpu_ticks()
    figures = fn(**kwargs)
    busy1, total1, ours1 = _cpu_ticks()
    return figures, max(0.0, (busy1 - busy0) - (ours1 - ours0)) / max(1, total1 - total0)


def wait_for_quiet(max_load=0.05, window=2.0, max_wait=300.0) -> None:
    """Sleep until other processes use under max_load of the CPU for a whole window (or max_wait passes)."""
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline and with_foreign_load(lambda: time.sleep(window))[1] > max_load:
        pass


def quiet_runs(fn, repeats: int, max_load: float, **kwargs) -> tuple[list, int]:
    """`repeats` runs of fn taken while the machine was quiet, and how many loaded runs were dropped."""
    kept, dropped = [], 0
    while len(kept) < repeats and dropped < repeats:
        wait_for_quiet(max_load)
        figures, load = with_foreign_load(fn, **kwargs)
        if load <= max_load:
            kept.append((figures, load))
        else:
            dropped += 1
    return kept or [(figures, load)], dropped


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="few steps, to check that everything runs")
    parser.add_argument("--max-load", type=float, default=0.05,
                        help="drop and retry a run during which other processes used more of the CPU than this")
    args = parser.parse_args(argv)
    rm_steps, ppo_iters = (3, 2) if args.quick else (20, 8)
    d, r = args.device, args.repeats
    print(f"torch {torch.__version__} | device {d} | threads {torch.get_num_threads()} | median of {r}")
    runs = [
        ("trl reward fp32", "pairs/s", trl_reward_pairs_per_sec, "pairs_per_sec", dict(steps=rm_steps)),
        ("trl reward bf16+ckpt", "pairs/s", trl_reward_pairs_per_sec, "pairs_per_sec",
         dict(steps=rm_steps, precision="bf16", gradient_checkpointing=True)),
        ("trl ppo fp32", "episodes/s", trl_ppo_episodes_per_sec, "episodes_per_sec", dict(iterations=ppo_iters)),
        ("hf generate", "new tokens/s", hf_generate_tokens_per_sec, "new_tokens_per_sec", {}),
    ]
    for label, unit, fn, key, kwargs in runs:
        results, dropped = quiet_runs(fn, r, args.max_load, device=d, **kwargs)
        median = statistics.median(figures[key] for figures, _ in results)
        detail = ", ".join(f"{figures[key]:.1f} (load {load:.0%})" for figures, load in results)
        print(f"{label:22s} {median:8.1f} {unit:13s} runs: {detail}; dropped {dropped}")
    results, dropped = quiet_runs(matmul_gflops, r, args.max_load, device=d)
    print(f"matmul fp32 GFLOP/s, median of {len(results)}; dropped {dropped}")
    for name in MODEL_SHAPES:
        print(f"  {name:28s} {statistics.median(g[name] for g, _ in results):8.1f}")


if __name__ == "__main__":
    main()
