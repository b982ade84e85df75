"""`python -m benchmarks.run`: rlhf-lab and TRL side by side on equal work, plus the roofline.

Runs alternate between the two libraries in one process (this machine's speed drifts
between sessions), each figure is the median of --repeats runs, and the ratio
ours / theirs is printed beside both. TRL and transformers come from the `bench` extra
(`pip install -e .[bench]`); without them only our figures are printed.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import torch

from benchmarks import ours

STAGES = {   # name → (our function, TRL function name, figure key of each)
    "reward model training (pairs/s)": (ours.reward_pairs_per_sec, "trl_reward_pairs_per_sec", "pairs_per_sec"),
    "PPO full step (episodes/s)": (ours.ppo_episodes_per_sec, "trl_ppo_episodes_per_sec", "episodes_per_sec"),
    "sampling (new tokens/s)": (ours.sampling_tokens_per_sec, "hf_generate_tokens_per_sec", "new_tokens_per_sec"),
}


TRL_DEFAULTS = "TRL reward training, its defaults (bf16, gradient checkpointing)"
LESS_WORK = "PPO step without a critic (RLOO; less work, not in the equal-work ratio)"


def trl_side():
    try:
        from benchmarks import trl_side
        return trl_side
    except ImportError:
        return None


def cpu_name() -> str:
    """The processor's model name: figures from two CPU models do not compare, even where both
    are "2 cores" (an AVX-512 Xeon and an AMD EPYC ran this benchmark's matmuls at 257-297 and
    167-184 GFLOP/s)."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and each flag's default after its help."""


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure; the median is reported")
    parser.add_argument("--out", default="benchmarks/results.json", help="where the JSON of results goes")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where both libraries run")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                        help="both libraries: fp32, or bf16 autocast (TRL's bf16=True); the roofline matmul too")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile our transformer blocks (an option of ours, not equal work)")
    parser.add_argument("--only-ours", action="store_true", help="skip TRL and Hugging Face generate")
    args = parser.parse_args(argv)
    ours_kwargs = dict(device=args.device, precision=args.precision, compile=args.compile)
    theirs_kwargs = dict(device=args.device, precision=args.precision)
    theirs_module = None if args.only_ours else trl_side()
    results = {}
    for name, (our_fn, their_name, key) in STAGES.items():
        runs = {"rlhf-lab": [], "TRL/HF": []}
        for _ in range(args.repeats):   # alternate: ours, theirs, ours, theirs, ...
            runs["rlhf-lab"].append(our_fn(**ours_kwargs))
            if theirs_module:
                runs["TRL/HF"].append(getattr(theirs_module, their_name)(**theirs_kwargs)[key])
        ours_median = statistics.median(r[key] for r in runs["rlhf-lab"])
        gflops = statistics.median(r.get("gflops_per_sec", 0.0) for r in runs["rlhf-lab"])
        theirs_median = statistics.median(runs["TRL/HF"]) if runs["TRL/HF"] else None
        results[name] = {"rlhf-lab": ours_median, "TRL/HF": theirs_median, "rlhf-lab GFLOP/s": gflops,
                         "ratio": ours_median / theirs_median if theirs_median else None}
    critic_free = statistics.median(ours.ppo_episodes_per_sec(**ours_kwargs, critic=False)["episodes_per_sec"]
                                    for _ in range(args.repeats))
    trl_ppo = results["PPO full step (episodes/s)"]["TRL/HF"]
    results[LESS_WORK] = {"rlhf-lab": critic_free, "TRL PPO": trl_ppo,
                          "ratio": critic_free / trl_ppo if trl_ppo else None}
    print(f"{LESS_WORK:<34} {critic_free:.1f} episodes/s"
          + (f" ({critic_free / trl_ppo:.2f}x TRL's PPO)" if trl_ppo else ""))
    if theirs_module:   # what a user of TRL gets without our fp32 / no-checkpointing settings
        defaults = [theirs_module.trl_reward_pairs_per_sec(device=args.device, precision="bf16", gradient_checkpointing=True)
                    ["pairs_per_sec"] for _ in range(args.repeats)]
        results[TRL_DEFAULTS] = statistics.median(defaults)
        print(f"{TRL_DEFAULTS:<34} {results[TRL_DEFAULTS]:.1f} pairs/s")
        matmul = theirs_module.matmul_gflops(**theirs_kwargs)
        results["matmul GFLOP/s"] = matmul
        peak = max(matmul.values())
        for name in STAGES:
            results[name]["share of matmul peak"] = results[name]["rlhf-lab GFLOP/s"] / peak
    for name, r in results.items():
        if name in STAGES:
            ratio = f"{r['ratio']:.2f}x" if r["ratio"] else "n/a"
            theirs = f"{r['TRL/HF']:.1f}" if r["TRL/HF"] else "n/a"
            print(f"{name:<34} rlhf-lab {r['rlhf-lab']:>9.1f}   TRL/HF {theirs:>9}   ratio {ratio}   "
                  f"{r['rlhf-lab GFLOP/s']:.1f} GFLOP/s")
    results["settings"] = {**vars(args), "torch": torch.__version__, "cpu": cpu_name(),
                           "threads": torch.get_num_threads(),
                           "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None}
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"results: {args.out}")
    return results


if __name__ == "__main__":
    main()
