"""Adapter: a transformers AutoModelForCausalLM behind the `CausalLM` protocol (model.py).

`HFCausalLM` gives a Hugging Face decoder (GPT-2, Llama and their kin) the three
calls every stage makes, `trunk`, `lm_head` and `new_cache`, plus a `GPTConfig`,
so `model.generate`, `model.token_logprobs` and `reward.RewardModel` run on it
unchanged. transformers is imported here only; the rest of the library never needs it.

Scope, honestly:
  (1) Tokenizers: a directory that holds a tokenizer (tokenizer.json or
      tokenizer_config.json beside config.json, as `save_pretrained` of a model and
      its tokenizer leaves it) brings it along as an `HFTokenizer`, and every stage
      encodes with it; the stages' checkpoints carry a copy in their metadata
      (run.architecture), so each loads back with its tokenizer. A
      directory without one must use the byte vocabulary (256 bytes + BOS, EOS, PAD,
      SEP, 260 ids), as the config-built `tiny_gpt2` does.
  (2) Dropout is switched off on load, as GPTConfig.dropout = 0 is for MiniGPT:
      PPO compares log-probs of the same tokens under train and eval mode.
  (3) run.load_model reads an HF `save_pretrained` directory. The stages' own
      checkpoints (policy, reward model) keep the HF config in their metadata
      (run.architecture), so they load back as the same HF model.
  (4) lm_head applies what the model's own forward does after its output embedding (the
      scales and soft caps of LOGIT_SCALES and SOFT_CAPS), so sampling, log-probs and KL see
      the model's own distribution. A head that transforms the hidden states before its output
      embedding (BERT-style encoders run as decoders) is not reproduced: such a model is refused
      on load (check_logits_reproduced), as is any other whose own logits trunk + lm_head miss.
"""
from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from torch import Tensor, nn
from transformers import (
    AutoConfig, AutoModelForCausalLM, AutoTokenizer, DynamicCache, GPT2Config, GPT2LMHeadModel, PreTrainedModel,
    PreTrainedTokenizerBase)

from rlhf_lab import tokenizer
from rlhf_lab.model import GPTConfig, full_logits
from rlhf_lab.run import ConfigError
from rlhf_lab.tokenizer import BYTES, Tokenizer


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


def gpt_config_of(hf: PreTrainedModel) -> GPTConfig:
    """Our GPTConfig read from an HF model; GPT-2's n_* names alias the standard ones (hidden_size, ...)
    through its attribute_map, and GPT-2's n_inner=None means 4·hidden_size. The width is what trunk()
    returns, the LM head's input, which the reward and value heads read: OPT with word_embed_proj_dim
    projects its hidden states down to it, so there it is not hidden_size."""
    hf_config = hf.config
    width = hf.get_output_embeddings().weight.shape[1]           # (V, D): D features in
    ffn = (getattr(hf_config, "intermediate_size", None) or getattr(hf_config, "n_inner", None)
           or 4 * hf_config.hidden_size)
    return GPTConfig(vocab_size=hf_config.vocab_size, context_len=hf_config.max_position_embeddings,
                     width=width, n_layers=hf_config.num_hidden_layers,
                     n_heads=hf_config.num_attention_heads, ffn=ffn, dropout=0.0)


# Scales that some models' own forward (<Model>ForCausalLM.forward, transformers 5.x) puts on the
# LM head's output z: logits = z · config.<field> ** power, by model_type.
LOGIT_SCALES = {
    **dict.fromkeys(("cohere", "cohere2", "cohere2_moe", "cohere_compass_text"), ("logit_scale", 1)),  # Command R
    "falcon_h1": ("lm_head_multiplier", 1),                   # µP multiplier (Yang et al. 2022)
    "hyperclovax": ("logits_scaling", 1),                     # µP too, but multiplied, unlike Granite's
    **dict.fromkeys(("granite", "granite_swa", "granitemoe", "granitemoe_swa", "granitemoehybrid",
                     "granitemoeshared"), ("logits_scaling", -1)),   # µP width multiplier
    # µP: these divide the hidden states before a bias-free head, which is the same thing
    "minicpm3": ("logits_scaling", -1), "inkling_text": ("logits_mup_width_multiplier", -1),
}
# Soft caps, logits = c·tanh(z / c), None = off, which bound the logits (Gemma Team 2024, Gemma 2):
# Gemma 2 onwards, VaultGemma, nanochat, Beam, Inkling 2; RecurrentGemma names it logits_soft_cap.
SOFT_CAPS = ("final_logit_softcapping", "logits_soft_cap")


def logit_transform(hf_config) -> tuple[float, float | None]:
    """(scale, cap) with which the model's own forward turns the LM head's output z into logits:
    cap·tanh(scale·z / cap), or scale·z without a cap (no model in transformers has both)."""
    kind, kept = hf_config.model_type, getattr(hf_config, "unpadded_vocab_size", None)
    if kind == "inkling_text" and kept is not None and kept < hf_config.vocab_size:   # its forward drops the rest
        raise ConfigError(f"{kind}: config.unpadded_vocab_size ({kept}) below vocab_size ({hf_config.vocab_size}) "
                          "cuts the logits to fewer ids than the model embeds; not supported")
    scale = 1.0
    if kind in LOGIT_SCALES:
        field, power = LOGIT_SCALES[kind]
        scale = (getattr(hf_config, field) or 1.0) ** power   # Cohere Compass's None: unscaled
    cap = next((getattr(hf_config, f) for f in SOFT_CAPS if getattr(hf_config, f, None) is not None), None)
    return scale, cap


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


PROMPT_END = "\n\n"   # ends a prompt for a tokenizer without a chat template (no SEP token of its own)


class HFTokenizer(Tokenizer):
    """A transformers tokenizer behind the calls the stages make (tokenizer.Tokenizer).

    The prompt template is the tokenizer's chat template when it has one (an instruction-tuned
    model's own: a user turn, then the assistant's header), else BOS (if the tokenizer has one),
    the prompt and a blank line. The answer follows as its own tokens, then EOS, as in TRL's
    SFT and reward trainers: the ids a model is trained on are the ids it samples. Unlike the
    byte template's SEP token, a blank line in a prompt's own text is not told apart from the
    end of the prompt."""

    def __init__(self, hf: PreTrainedTokenizerBase, source: str = "the tokenizer"):
        if hf.eos_token_id is None:
            raise ConfigError(f"{source}: the tokenizer has no EOS token, so no answer could end")
        self.hf = hf
        self.eos, self.bos = hf.eos_token_id, hf.bos_token_id
        self.pad = self.eos if hf.pad_token_id is None else hf.pad_token_id   # padding is masked out anyway
        self.vocab_size = len(hf)
        self.never_sampled = sorted({i for i in (self.bos, self.pad) if i is not None} - {self.eos})

    def encode(self, text: str) -> list[int]:
        """Text as text: a special token's name inside it ("<|endoftext|>" in a data row) is
        encoded as those characters, never as the special id (which would end an answer early)."""
        return self.hf.encode(text, add_special_tokens=False, split_special_tokens=True)

    def decode(self, tokens: list[int] | Tensor) -> str:
        return self.hf.decode(tokens, skip_special_tokens=True)

    def encode_prompt(self, prompt: str) -> list[int]:
        if self.hf.chat_template:
            return list(self.hf.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                    tokenize=True, return_dict=False))
        return [self.bos] * (self.bos is not None) + self.encode(prompt + PROMPT_END)

    def truncate_prompt(self, prompt: str, excess: int) -> str:
        text = self.decode(self.encode(prompt)[excess:])
        # a byte-level vocabulary can cut a character in two, whose rest decodes as U+FFFD: not the data's text
        return text if "\ufffd" in prompt else text.lstrip("\ufffd")

    def __eq__(self, other) -> bool:
        return (isinstance(other, HFTokenizer) and self.hf.get_vocab() == other.hf.get_vocab()
                and (self.eos, self.bos, self.hf.chat_template) == (other.eos, other.bos, other.hf.chat_template))


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def load_tokenizer(path: str | Path) -> Tokenizer | None:
    """The tokenizer saved in a directory, or None if it holds none."""
    if not any((Path(path) / name).exists() for name in TOKENIZER_FILES):
        return None
    try:
        return HFTokenizer(AutoTokenizer.from_pretrained(str(path), local_files_only=True), str(path))
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: the tokenizer does not load ({first_line(e)})") from None


def tokenizer_metadata(tok: HFTokenizer) -> dict[str, str]:
    """The files of `save_pretrained`, as checkpoint metadata: the checkpoint alone rebuilds the
    model's tokenizer, and is written in one atomic step."""
    with tempfile.TemporaryDirectory() as directory:
        tok.hf.save_pretrained(directory)
        files = {p.name: base64.b64encode(p.read_bytes()).decode("ascii") for p in Path(directory).iterdir()}
    return {"hf_tokenizer": json.dumps(files)}


def tokenizer_from_metadata(text: str) -> Tokenizer:
    """Inverse of tokenizer_metadata."""
    with tempfile.TemporaryDirectory() as directory:
        for name, content in json.loads(text).items():
            (Path(directory) / name).write_bytes(base64.b64decode(content))
        return load_tokenizer(directory)


class HFCausalLM(nn.Module):
    """A PreTrainedModel with an LM head, seen through the CausalLM protocol, and its tokenizer."""

    def __init__(self, hf: PreTrainedModel, tok: Tokenizer = BYTES):
        super().__init__()
        self.hf = hf
        self.tokenizer = tok
        self.config = gpt_config_of(hf)
        self.logit_scale, self.logit_cap = logit_transform(hf.config)
        disable_dropout(hf)
        check_logits_reproduced(self)

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        return full_logits(self, tokens, mask)                              # (B, T, V)

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

    def head_only_parameters(self) -> list[nn.Parameter]:
        """The LM head's parameters that the trunk does not use: a Llama-style separate head's,
        none where the head is the input embedding (GPT-2, MiniGPT)."""
        shared = {id(p) for p in self.hf.get_input_embeddings().parameters()}
        return [p for p in self.hf.get_output_embeddings().parameters() if id(p) not in shared]

    def lm_head(self, hidden: Tensor) -> Tensor:
        """The model's own logits: its output embedding, then the scale or soft cap its forward applies."""
        logits = self.hf.get_output_embeddings()(hidden)                    # (B, T, V)
        if self.logit_scale != 1.0:
            logits = logits * self.logit_scale
        if self.logit_cap is not None:
            logits = torch.tanh(logits / self.logit_cap) * self.logit_cap
        return logits


@torch.no_grad()
def check_logits_reproduced(model: HFCausalLM, length: int = 8) -> None:
    """Refuse a model whose own forward gives other logits than trunk + lm_head, the calls every
    stage makes: a step between its last hidden state and its logits that this adapter does not
    know would make every sample, log-prob and KL silently those of another distribution. One
    forward over `length` tokens, in eval mode."""
    positions = torch.arange(min(length, model.config.context_len), device=next(model.hf.parameters()).device)[None]
    tokens = positions % model.config.vocab_size                                            # (1, T)
    kind, was_training = model.hf.config.model_type, model.hf.training
    model.hf.eval()
    try:
        theirs = model.hf(tokens).logits.float()                                          # (1, T, V)
        ours = model.lm_head(model.trunk(tokens, positions)).float()
    except (TypeError, ValueError) as e:          # its base model takes other arguments than trunk passes
        raise ConfigError(f"{kind}: its base model does not run as a trunk ({first_line(e)})") from None
    finally:
        model.hf.train(was_training)
    gap, size = (ours - theirs).abs().max().item(), theirs.abs().max().item()
    if gap > 1e-4 * (1 + size):
        raise ConfigError(f"{kind}: its own logits are not its last hidden state through its output embedding "
                          f"(differing by up to {gap:.3g} on logits up to {size:.3g}): a head that transforms the "
                          "hidden states first, as BERT-style models run as decoders have, is not supported")


def from_pretrained(path: str | Path, device: torch.device | str = "cpu") -> HFCausalLM:
    """An HFCausalLM from a local `save_pretrained` directory, with the tokenizer saved beside
    it (or the byte vocabulary); never touches the hub."""
    try:
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:     # an unknown model_type, a broken config.json
        raise ConfigError(f"{path}: not a loadable Hugging Face model ({first_line(e)})") from None
    tok = tokenizer_for(path, config.vocab_size)
    # fp32 whatever the checkpoint's dtype: the stages keep weights and optimizer in fp32 (bf16 is autocast)
    try:
        hf = AutoModelForCausalLM.from_pretrained(str(path), config=config, local_files_only=True,
                                                  dtype=torch.float32)
    except (OSError, ValueError, SafetensorError) as e:   # no weights file, cut-off or mismatched weights
        raise ConfigError(f"{path}: the Hugging Face weights do not load ({first_line(e)})") from None
    return HFCausalLM(hf, tok).to(device)


def tokenizer_for(path: str | Path, vocab_size: int) -> Tokenizer:
    """The tokenizer saved in `path`, whose ids must all be rows of the model's embedding;
    without one, the byte tokenizer, for a model of the byte vocabulary."""
    tok = load_tokenizer(path)
    if tok is None and vocab_size != tokenizer.VOCAB_SIZE:
        raise ConfigError(f"{path}: a vocabulary of {vocab_size} ids and no tokenizer saved beside it; save the "
                          "model's tokenizer there (tokenizer.save_pretrained), or use the byte vocabulary "
                          f"({tokenizer.VOCAB_SIZE} ids)")
    if tok is not None and tok.vocab_size > vocab_size:
        raise ConfigError(f"{path}: the tokenizer has {tok.vocab_size} ids but the model embeds only {vocab_size}")
    return tok or BYTES


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


def from_config_json(text: str, tok: Tokenizer) -> HFCausalLM:
    """A freshly initialised model from a config's JSON (a checkpoint's metadata, run.architecture)."""
    values = json.loads(text)
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    return HFCausalLM(AutoModelForCausalLM.from_config(config, dtype=torch.float32), tok)
