"""The optimizers every stage's training loop shares: AdamW (default) or Muon with AdamW,
and warmup with cosine decay."""
from __future__ import annotations

import math

import torch
from torch import nn

from rlhf_lab.run import ConfigError, check_choice

OPTIMIZERS = ("adamw", "muon")


def check_optimizer(name: str) -> None:
    """--optimizer: one of OPTIMIZERS that this torch has (torch.optim.Muon is new in 2.9)."""
    check_choice("optimizer", name, OPTIMIZERS)
    if name == "muon" and not hasattr(torch.optim, "Muon"):
        raise ConfigError(f"--optimizer muon needs torch.optim.Muon, new in PyTorch 2.9; this is torch "
                          f"{torch.__version__}: upgrade torch, or take --optimizer adamw")


def adamw(modules: list[nn.Module], lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW over every parameter of the modules that trains (adamw_over)."""
    return adamw_over(trainable(modules), lr, weight_decay)


def adamw_over(params: list[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW that decays matrices only; biases, norms and embeddings' 1-D
    parameters are left alone (nanoGPT, after Loshchilov & Hutter 2019)."""
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))


def trainable(modules: list[nn.Module]) -> list[nn.Parameter]:
    return [p for m in modules for p in m.parameters() if p.requires_grad]


def make_optimizer(name: str, modules: list[nn.Module], lr: float, weight_decay: float):
    """`name` from OPTIMIZERS, at peak learning rate `lr` (for Muon, the AdamW-equivalent one)."""
    return MuonWithAdamW(modules, lr, weight_decay) if name == "muon" else adamw(modules, lr, weight_decay)


def hidden_matrices(modules: list[nn.Module]) -> list[nn.Parameter]:
    """The parameters Muon is for: the transformer's hidden weight matrices. Embeddings, the
    output head (tied or not) and any matrix with a side of 1 (a scalar head) stay with AdamW,
    as in Jordan et al. (2024): orthogonalising a lookup table's or a head's update is not what
    Muon's argument covers."""
    skip = set()
    for module in (sub for m in modules for sub in m.modules()):
        if isinstance(module, nn.Embedding):
            skip.update(id(p) for p in module.parameters())
        output = module.get_output_embeddings() if hasattr(module, "get_output_embeddings") else None
        if output is not None:
            skip.update(id(p) for p in output.parameters())
    return [p for p in trainable(modules) if p.dim() == 2 and min(p.shape) > 1 and id(p) not in skip]


class MuonWithAdamW:
    """torch.optim.Muon (momentum, then Newton-Schulz orthogonalisation of each matrix's update)
    on the hidden matrices, AdamW on every other parameter, stepped as one optimizer.
    Muon's step is scaled to AdamW's update size ("match_rms_adamw", Liu et al. 2025), so one
    peak learning rate and one schedule serve both. Its state_dict numbers Muon's parameters
    first, then AdamW's, as save_train_state and load_train_state expect of one optimizer."""

    def __init__(self, modules: list[nn.Module], lr: float, weight_decay: float):
        hidden = hidden_matrices(modules)
        chosen = {id(p) for p in hidden}
        self.muon = torch.optim.Muon(hidden, lr=lr, weight_decay=weight_decay, adjust_lr_fn="match_rms_adamw")
        self.adamw = adamw_over([p for p in trainable(modules) if id(p) not in chosen], lr, weight_decay)
        self.parts = (self.muon, self.adamw)

    @property
    def param_groups(self) -> list[dict]:
        return [group for part in self.parts for group in part.param_groups]

    def step(self) -> None:
        for part in self.parts:
            part.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def _offsets(self) -> tuple[int, int]:
        return 0, sum(len(group["params"]) for group in self.muon.param_groups)

    def state_dict(self) -> dict:
        merged = {"state": {}, "param_groups": []}
        for part, offset in zip(self.parts, self._offsets()):
            state = part.state_dict()
            merged["state"].update({i + offset: s for i, s in state["state"].items()})
            merged["param_groups"] += [{**g, "params": [i + offset for i in g["params"]]}
                                       for g in state["param_groups"]]
        return merged

    def load_state_dict(self, state: dict) -> None:
        groups = iter(state["param_groups"])
        for part, offset in zip(self.parts, self._offsets()):
            own = [next(groups) for _ in part.param_groups]
            indices = {i for g in own for i in g["params"]}
            part.load_state_dict({
                "state": {i - offset: s for i, s in state["state"].items() if i in indices},
                "param_groups": [{**g, "params": [i - offset for i in g["params"]]} for g in own]})


def lr_at(step: int, total: int, peak: float, warmup: int, final_frac: float = 0.1) -> float:
    """Linear warmup to `peak`, then cosine decay to `final_frac * peak`. A warmup as long as the
    whole run or longer (the default's 100 steps in a 60-step run) would never reach the peak:
    a tenth of the run warms up instead."""
    warmup = warmup if warmup < total else total // 10
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (final_frac + (1 - final_frac) * 0.5 * (1 + math.cos(math.pi * progress)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def clip_and_step(optimizer: torch.optim.Optimizer, modules: list[nn.Module], max_norm: float,
                  where: str = "a training step") -> float:
    """Clip the global gradient norm (PPO's D10), step, zero the grads; returns the pre-clip norm.

    A NaN or infinite norm (a loss or gradient that overflowed) is a ConfigError naming `where`
    ("sft step 12"), raised before the step would turn every weight to NaN, so a diverged run
    stops instead of saving a model that cannot sample."""
    params = [p for m in modules for p in m.parameters() if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm).item()
    if not math.isfinite(norm):
        raise ConfigError(f"{where}: the gradient norm is {norm}, from a loss or gradient that overflowed; the "
                          "learning rate (--lr) is likely too high for this model and data. Stopped before saving")
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return norm
