"""Mixed precision and torch.compile: the options a GPU run turns on, checked on CPU
(same code paths), plus the CUDA checks that run where a GPU is present."""
import shutil

import pytest
import torch

from rlhf_lab import optim, pipeline
from rlhf_lab.model import MiniGPT, SamplingConfig, attend, compile_blocks, generate, token_logprobs
from rlhf_lab.reward import RewardModel
from rlhf_lab.run import ConfigError, autocast, read_json
from reference import TINY, assert_cached_greedy_equals_uncached

CPU = torch.device("cpu")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return MiniGPT(TINY)


def batch():
    tokens = torch.randint(0, 256, (3, 12), generator=torch.Generator().manual_seed(1))
    return tokens, torch.ones_like(tokens, dtype=torch.bool)


def test_bf16_turns_autocast_on_and_bad_values_are_refused():
    with autocast(CPU, "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    with autocast(CPU, "bf16"):
        assert torch.is_autocast_enabled("cpu")
    with pytest.raises(ConfigError, match="--precision"):
        autocast(CPU, "fp16")


def test_a_bf16_region_spanning_optimizer_steps_computes_with_the_updated_weights():
    # a stage runs whole inside one autocast region; autocast's weight cache would keep
    # serving the bf16 copies made before the first step
    model, (tokens, mask) = tiny_model(), batch()
    optimizer = optim.adamw([model], 1e-2, 0.0)
    with autocast(CPU, "bf16"):
        model(tokens).float().square().mean().backward()
        optimizer.step()
        inside = model(tokens)
    with autocast(CPU, "bf16"):
        fresh = model(tokens)
    assert torch.equal(inside, fresh)


def test_bf16_log_probs_and_rewards_come_out_in_fp32_close_to_fp32_ones():
    model, (tokens, mask) = tiny_model().eval(), batch()
    reward_model = RewardModel(tiny_model(1), likelihood_weight=1.0).eval()
    start = torch.full((3,), 4)
    with torch.no_grad():
        exact = token_logprobs(model, tokens, mask, 4)[0], reward_model(tokens, mask, start)
        with autocast(CPU, "bf16"):
            mixed = token_logprobs(model, tokens, mask, 4)[0], reward_model(tokens, mask, start)
    for a, b in zip(exact, mixed):
        assert b.dtype == torch.float32
        assert torch.allclose(a, b, atol=0.05), (a - b).abs().max()


def test_cpu_attention_under_bf16_autocast_runs_in_fp32_and_gets_gradients():
    # bf16 attention's backward is the slow kernel on CPU (model.attend)
    q, k, v = (torch.randn(2, 4, 6, 8, generator=torch.Generator().manual_seed(i)).requires_grad_()
               for i in range(3))
    exact = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    with autocast(CPU, "bf16"):
        mixed = attend(q.bfloat16(), k.bfloat16(), v.bfloat16(), None, True)
    assert mixed.dtype == torch.float32
    assert torch.allclose(exact, mixed, atol=0.03), (exact - mixed).abs().max()
    mixed.sum().backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in (q, k, v))


@pytest.mark.skipif(not shutil.which("c++"), reason="torch.compile on CPU needs a C++ compiler")
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=cuda)])
def test_compiled_blocks_give_the_eager_logits_and_greedy_samples(device):
    eager, compiled = tiny_model().eval().to(device), tiny_model().eval().to(device)
    compile_blocks(compiled)
    tokens, mask = batch()
    with torch.no_grad():
        assert torch.allclose(eager(tokens.to(device)), compiled(tokens.to(device)), atol=1e-4)
    assert_cached_greedy_equals_uncached(compiled, lambda m, t, k: eager(t, k))


def tiny_pipeline_on(tmp_path, **kw):
    return pipeline.main(pipeline.PipelineConfig(out=str(tmp_path / "p"), preset="tiny", **kw))


@pytest.mark.slow   # quick version: the bf16 case of test_a_few_ppo_steps_raise_the_rewarded_first_byte
def test_tiny_pipeline_in_bf16_still_raises_gold_and_proxy(tmp_path):
    summary = tiny_pipeline_on(tmp_path, device="cpu", precision="bf16")
    assert read_json(tmp_path / "p" / "ppo" / "config.json")["precision"] == "bf16"
    assert summary["gold_mean_policy"] > summary["gold_mean_sft"]
    assert summary["proxy_mean_policy"] > summary["proxy_mean_sft"]


@cuda
def test_cuda_greedy_samples_equal_the_cpu_ones():
    model = tiny_model().eval()
    prompts = torch.randint(0, 256, (4, 9), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(prompts, dtype=torch.bool)
    mask[:2, :3] = False                                     # left padding on two rows
    greedy = SamplingConfig(max_new_tokens=16, temperature=0)
    on_cpu = generate(model, prompts, mask, greedy)
    on_gpu = generate(model.cuda(), prompts.cuda(), mask.cuda(), greedy)
    assert torch.equal(on_cpu.tokens, on_gpu.tokens.cpu()) and torch.equal(on_cpu.mask, on_gpu.mask.cpu())


@cuda
def test_cuda_tiny_pipeline_in_bf16_raises_gold(tmp_path):
    summary = tiny_pipeline_on(tmp_path, device="cuda", precision="bf16")
    assert read_json(tmp_path / "p" / "rm" / "config.json")["device"] == "cuda"
    assert summary["gold_mean_policy"] > summary["gold_mean_sft"]
