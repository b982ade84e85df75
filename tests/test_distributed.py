"""torchrun / DistributedDataParallel: two CPU ranks (gloo) through every training stage."""
import json
import os
import subprocess
import sys
from pathlib import Path

WORKER = Path(__file__).with_name("ddp_worker.py")


def test_two_ranks_keep_equal_weights_and_rank0_alone_writes_the_run(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             str(WORKER), str(tmp_path)],
                            capture_output=True, text=True, env=env, timeout=600)
    errors = "\n".join(line for line in result.stderr.splitlines() if not line.startswith("W"))
    assert result.returncode == 0, result.stdout[-2000:] + errors[-6000:]
    assert result.stdout.count("weights equal on all ranks") == 2     # both ranks checked every stage
    rm_steps = 84 // 21 // 2        # 4 ranked prompts of 21 pairs, half per rank, one per step: logged once
    for stage, steps in (("sft", [2, 4]), ("rm", [rm_steps]), ("ppo", [1, 2]), ("rloo", [1, 2])):
        lines = (tmp_path / stage / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["step"] for line in lines] == steps, f"{stage}: one log line per step"
        assert (tmp_path / stage / "model.safetensors").exists()
