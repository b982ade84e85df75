"""Adapter: a transformers AutoModelForCausalLM behind the `CausalLM` protocol (model.py).

`HFCausalLM` gives a Hugging Face decoder (GPT-2, Llama and their kin) the three
calls every stage makes, `trunk`, `lm_head` and `new_cache`, plus a `GPTConfig`,
so `model.generate`, `model.token_logprobs` and `reward.RewardModel` run on it
unchanged. transformers is imported here only; the rest of the library never needs it.

Scope, honestly:
  (1) The pipeline's tokenizer is the byte-level one (tokenizer.py). An HF model
      plugs in when its vocabulary *is* that byte vocabulary: 256 bytes + BOS, EOS,
      PAD, SEP, 260 ids, as the config-built `tiny_gpt2` is. A pretrained model
      with its own tokenizer (GPT-2's BPE, Llama's SentencePiece) is refused on
      load: its ids would mean nothing to rollout.py, data.py and
      reward.encode_responses until its tokenizer is wired into that encoding.
      Known limitation.
  (2) Dropout is switched off on load, as GPTConfig.dropout = 0 is for MiniGPT:
      PPO compares log-probs of the same tokens under train and eval mode.
  (3) run.load_model reads an HF `save_pretrained` directory. The stages' own
      checkpoints (policy, reward model) keep the HF config in their metadata
      (run.architecture), so they load back as the same HF model.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from torch import Tensor, nn
from transformers import AutoConfig, AutoModelForCausalLM, DynamicCache, GPT2Config, GPT2LMHeadModel, PreTrainedModel

from rlhf_lab import tokenizer
from rlhf_lab.model import GPTConfig
from rlhf_lab.run import ConfigError


class HFCache:
    """A transformers DynamicCache plus `.length`, the positions filled (as KVCache has).

    DynamicCache grows by concatenation, so `length` (the preallocation size of
    KVCache) is not needed; the cache's own count is the single source of truth.
    """

    def __init__(self, model: PreTrainedModel):
        self.hf_cache = DynamicCache(config=model.config)

    @property
    def length(self) -> int:
        return self.hf_cache.get_seq_length()


def gpt_config_of(hf_config) -> GPTConfig:
    """Our GPTConfig read from an HF config; GPT-2's n_* names alias the standard
    ones (hidden_size, ...) through its attribute_map, and GPT-2's n_inner=None means 4·width."""
    width = hf_config.hidden_size
    ffn = getattr(hf_config, "intermediate_size", None) or getattr(hf_config, "n_inner", None) or 4 * width
    return GPTConfig(vocab_size=hf_config.vocab_size, context_len=hf_config.max_position_embeddings,
                     width=width, n_layers=hf_config.num_hidden_layers,
                     n_heads=hf_config.num_attention_heads, ffn=ffn, dropout=0.0)


def disable_dropout(model: PreTrainedModel) -> None:
    """p = 0 in every nn.Dropout (GPT-2 also reads attn_dropout.p for its SDPA call), and in the
    plain float rates Llama-style attention reads in training mode (module.attention_dropout)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0
    for name, value in model.config.to_dict().items():
        if isinstance(value, float) and name.endswith(("dropout", "pdrop")):
            setattr(model.config, name, 0.0)


class HFCausalLM(nn.Module):
    """A PreTrainedModel with an LM head, seen through the CausalLM protocol."""

    def __init__(self, hf: PreTrainedModel):
        super().__init__()
        self.hf = hf
        self.config = gpt_config_of(hf.config)
        disable_dropout(hf)

    def new_cache(self, batch: int, length: int) -> HFCache:
        return HFCache(self.hf)

    def trunk(self, tokens: Tensor, positions: Tensor, key_mask: Tensor | None = None,
              cache: HFCache | None = None, outputs_from: int = 0) -> Tensor:
        """(B, T) tokens → (B, T - outputs_from, D) hidden states after the final norm
        (computed for every column: transformers has no hook to skip the unread ones).

        key_mask (B, S) covers cached + new keys; transformers builds the causal ∧
        padding mask from it. positions (B, T) go in as position_ids, so left
        padding does not shift positions (learned for GPT-2, rotary for Llama).
        """
        out = self.hf.base_model(input_ids=tokens, attention_mask=key_mask, position_ids=positions,
                                 cache=cache.hf_cache if cache is not None else None,
                                 use_cache=cache is not None)
        return out.last_hidden_state[:, outputs_from:]

    def lm_head(self, hidden: Tensor) -> Tensor:
        return self.hf.get_output_embeddings()(hidden)                      # (B, T, V)


def from_pretrained(path: str | Path, device: torch.device | str = "cpu") -> HFCausalLM:
    """An HFCausalLM from a local `save_pretrained` directory; never touches the hub.
    Its vocabulary must be the byte vocabulary (scope note 1)."""
    try:
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:     # an unknown model_type, a broken config.json
        raise ConfigError(f"{path}: not a loadable Hugging Face model ({first_line(e)})") from None
    if config.vocab_size != tokenizer.VOCAB_SIZE:
        raise ConfigError(f"{path}: a vocabulary of {config.vocab_size} ids; rlhf-lab encodes text as 256 bytes "
                          f"+ BOS, EOS, PAD, SEP ({tokenizer.VOCAB_SIZE} ids), and a model with its own "
                          "tokenizer is not supported")
    # fp32 whatever the checkpoint's dtype: the stages keep weights and optimizer in fp32 (bf16 is autocast)
    try:
        hf = AutoModelForCausalLM.from_pretrained(str(path), config=config, local_files_only=True,
                                                  dtype=torch.float32)
    except (OSError, ValueError, SafetensorError) as e:   # no weights file, cut-off or mismatched weights
        raise ConfigError(f"{path}: the Hugging Face weights do not load ({first_line(e)})") from None
    return HFCausalLM(hf).to(device)


def first_line(error: Exception) -> str:
    """transformers' messages run to paragraphs of advice; the first line says what is wrong."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def tiny_gpt2(config: GPTConfig) -> HFCausalLM:
    """A randomly initialised GPT2LMHeadModel shaped like `config`, over the byte vocabulary."""
    hf_config = GPT2Config(vocab_size=config.vocab_size, n_positions=config.context_len,
                           n_embd=config.width, n_layer=config.n_layers, n_head=config.n_heads,
                           n_inner=config.ffn, resid_pdrop=config.dropout, embd_pdrop=config.dropout,
                           attn_pdrop=config.dropout, bos_token_id=tokenizer.BOS,
                           eos_token_id=tokenizer.EOS, pad_token_id=tokenizer.PAD)
    return HFCausalLM(GPT2LMHeadModel(hf_config))


def from_config_json(text: str) -> HFCausalLM:
    """A freshly initialised model from a config's JSON (a checkpoint's metadata, run.architecture)."""
    values = json.loads(text)
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    return HFCausalLM(AutoModelForCausalLM.from_config(config, dtype=torch.float32))
