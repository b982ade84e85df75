"""torchrun / DistributedDataParallel: two CPU ranks (gloo) through every training stage, launched
by torchrun and by Hugging Face accelerate (which starts the same torch.distributed processes)."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("ddp_worker.py")

def launcher_args(launcher: str, tmp_path: Path) -> list[str]:
    if launcher == "torchrun":
        return ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    # --multi_gpu is accelerate's multi-process launcher; on a machine without a GPU its ranks run on the CPU.
    # A config file of its own, so a user's default one (GPU ids, machines) does not apply; port 0: a free one
    config = tmp_path / "accelerate.yaml"
    config.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\n")
    return ["-m", "accelerate.commands.launch", "--config_file", str(config), "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"]


@pytest.mark.parametrize("launcher", [
    "torchrun",
    pytest.param("accelerate", marks=pytest.mark.skipif(importlib.util.find_spec("accelerate") is None,
                                                        reason="accelerate is not installed (pip install -e .[hf])"))])
def test_two_ranks_keep_equal_weights_and_rank0_alone_writes_the_run(tmp_path, launcher):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, *launcher_args(launcher, tmp_path), str(WORKER), str(tmp_path)],
                            capture_output=True, text=True, env=env, timeout=600)
    errors = "\n".join(line for line in result.stderr.splitlines() if not line.startswith("W"))
    assert result.returncode == 0, result.stdout[-2000:] + errors[-6000:]
    assert result.stdout.count("weights equal on all ranks") == 2     # both ranks checked every stage
    rm_steps = 105 // 21 // 2       # 5 ranked prompts of 21 pairs, the smaller shard's 2 per rank, one a step
    for stage, steps in (("sft", [2, 4]), ("rm", [rm_steps]), ("ppo", [1, 2]), ("rloo", [1, 2])):
        lines = (tmp_path / stage / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["step"] for line in lines] == steps, f"{stage}: one log line per step"
        assert (tmp_path / stage / "model.safetensors").exists()


def test_a_numbered_gpu_under_torchrun_is_refused_before_the_process_group_starts(monkeypatch):
    import torch
    from rlhf_lab import distributed
    from rlhf_lab.run import ConfigError
    monkeypatch.setenv("RANK", "1")          # as torchrun starts each process
    with pytest.raises(ConfigError, match="--device cuda:1: under torchrun each process takes the GPU of its"):
        distributed.init(torch.device("cuda:1"))
    assert not torch.distributed.is_initialized()
