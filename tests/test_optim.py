import pytest
import torch

from rlhf_lab import optim
from rlhf_lab.model import GPTConfig, MiniGPT
from rlhf_lab.reward import RewardModel
from rlhf_lab.run import ConfigError, load_train_state, save_train_state

CONFIG = GPTConfig(context_len=16, width=16, n_layers=2, n_heads=2, ffn=32)


def loss_of(model: MiniGPT, seed: int) -> torch.Tensor:
    tokens = torch.randint(256, (4, 12), generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.cross_entropy(model(tokens[:, :-1]).flatten(0, 1), tokens[:, 1:].flatten())


def test_muon_takes_the_blocks_matrices_and_adamw_the_rest():
    model = RewardModel(MiniGPT(CONFIG))
    hidden = {id(p) for p in optim.hidden_matrices([model])}
    names = {name for name, p in model.named_parameters() if id(p) in hidden}
    assert names == {name for name, p in model.named_parameters()
                     if name.startswith("backbone.blocks.") and p.dim() == 2}
    assert len(names) == 4 * CONFIG.n_layers                  # attention in, attention out, two feed-forward
    optimizer = optim.make_optimizer("muon", [model], 1e-3, 0.1)
    in_adamw = [p for group in optimizer.adamw.param_groups for p in group["params"]]
    assert {id(p) for p in in_adamw} | hidden == {id(p) for p in model.parameters()}
    assert not {id(p) for p in in_adamw} & hidden              # embeddings, norms, biases, the scalar head


def test_a_muon_step_moves_each_matrix_by_adamws_update_size():
    # "match_rms_adamw": an update of RMS about 0.2 · lr, as AdamW's is, whatever the matrix's shape
    torch.manual_seed(0)
    model = MiniGPT(CONFIG)
    optimizer = optim.make_optimizer("muon", [model], 1e-3, 0.0)
    before = [p.detach().clone() for p in optimizer.muon.param_groups[0]["params"]]
    loss_of(model, 0).backward()
    optimizer.step()
    for old, new in zip(before, optimizer.muon.param_groups[0]["params"]):
        rms = ((new - old) / 1e-3).pow(2).mean().sqrt().item()
        assert 0.1 < rms < 0.3


def test_set_lr_reaches_both_optimizers():
    optimizer = optim.make_optimizer("muon", [MiniGPT(CONFIG)], 1e-3, 0.1)
    optim.set_lr(optimizer, 5e-4)
    assert {g["lr"] for g in optimizer.muon.param_groups + optimizer.adamw.param_groups} == {5e-4}


@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_a_resumed_optimizer_continues_exactly(tmp_path, name):
    # two steps, save, one more; against: two steps, save, load into fresh objects, one more
    def trained(steps: int):
        torch.manual_seed(0)
        model = MiniGPT(CONFIG)
        optimizer = optim.make_optimizer(name, [model], 1e-2, 0.1)
        for step in range(steps):
            loss_of(model, step).backward()
            optim.clip_and_step(optimizer, [model], 1.0)
        return model, optimizer
    model, optimizer = trained(2)
    save_train_state(tmp_path / "state.safetensors", {"model": model}, optimizer, 2)
    loss_of(model, 2).backward()
    optim.clip_and_step(optimizer, [model], 1.0)

    torch.manual_seed(1)
    resumed = MiniGPT(CONFIG)
    resumed_optimizer = optim.make_optimizer(name, [resumed], 1e-2, 0.1)
    assert load_train_state(tmp_path / "state.safetensors", {"model": resumed}, resumed_optimizer) == 2
    loss_of(resumed, 2).backward()
    optim.clip_and_step(resumed_optimizer, [resumed], 1.0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), resumed.state_dict().values()))


def test_a_non_finite_gradient_norm_stops_the_run_before_the_step_and_names_it():
    model = MiniGPT(CONFIG)
    optimizer = optim.adamw([model], 1e-3, 0.0)
    before = [p.detach().clone() for p in model.parameters()]
    (loss_of(model, 0) * float("inf")).backward()
    with pytest.raises(ConfigError, match=r"sft step 3: the gradient norm is (nan|inf).*--lr"):
        optim.clip_and_step(optimizer, [model], 1.0, "sft step 3")
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_a_warmup_longer_than_the_run_warms_up_over_a_tenth_of_it():
    rates = [optim.lr_at(step, 20, 1e-3, warmup=30) for step in range(20)]   # 30 would never reach 1e-3
    assert rates[:3] == pytest.approx([5e-4, 1e-3, 1e-3], rel=1e-6) and rates[-1] < rates[2]
    assert optim.lr_at(0, 200, 1e-3, warmup=30) == pytest.approx(1e-3 / 30)           # a shorter one is kept


def test_muon_on_a_torch_without_it_is_a_config_error(monkeypatch):
    from rlhf_lab.sft import SFTConfig
    monkeypatch.delattr(torch.optim, "Muon")                       # torch before 2.9
    with pytest.raises(ConfigError, match="--optimizer muon needs torch.optim.Muon, new in PyTorch 2.9"):
        SFTConfig(optimizer="muon").validate()
    SFTConfig(optimizer="adamw").validate()
