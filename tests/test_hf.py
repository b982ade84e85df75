import json

import pytest

pytest.importorskip("transformers")

import torch
import torch.nn.functional as F

from rlhf_lab import hf, run, tokenizer
from rlhf_lab.model import positions_from_mask, token_logprobs
from rlhf_lab.data import PreferencePair
from rlhf_lab.reward import RewardModel, bradley_terry_loss, pair_rewards
from rlhf_lab.tokenizer import BYTES
from reference import TINY, assert_cached_greedy_equals_uncached, assert_one_step_trains_all_but



@pytest.fixture
def model():
    """Weights drawn at std 0.3: at GPT-2's init (0.02) attention is near uniform and
    greedy decoding repeats tokens, which would hide a padding or cache bug."""
    torch.manual_seed(0)
    model = hf.tiny_gpt2(TINY).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model


def logits(model, tokens, mask):
    """Our path: trunk + lm_head, positions that skip left padding."""
    return model.lm_head(model.trunk(tokens, positions_from_mask(mask), mask))


def test_config_is_read_from_the_hf_config(model):
    assert model.config == TINY


def test_logits_equal_the_hf_models_own_without_padding(model):
    tokens = torch.randint(0, 256, (2, 12))
    mask = torch.ones_like(tokens, dtype=torch.bool)
    with torch.no_grad():
        assert torch.allclose(logits(model, tokens, mask), model.hf(tokens).logits, atol=1e-5)


def test_logits_equal_the_hf_models_own_with_left_padding(model):
    rows = [BYTES.encode_pair("What is 2+2?", "4")[0], BYTES.encode_pair("Hi", "hello")[0]]
    tokens, mask = BYTES.left_pad(rows)
    with torch.no_grad():
        ours = logits(model, tokens, mask)
        theirs = model.hf(tokens, attention_mask=mask.long(), position_ids=positions_from_mask(mask)).logits
        alone = model.hf(torch.tensor([rows[1]])).logits[0]
    assert torch.allclose(ours[mask], theirs[mask], atol=1e-5)
    assert torch.allclose(ours[1, -len(rows[1]):], alone, atol=1e-5)   # padding changes nothing


# A tiny config per way hf.lm_head transforms the output embedding's logits (hf.LOGIT_SCALES, hf.SOFT_CAPS):
# each field name, multiplied or divided, and the soft cap under both names; each far from 1 so that a
# missed one shows, with any field its model_type needs to build.
TRANSFORMED_LOGITS = {
    "gemma2": dict(final_logit_softcapping=2.0),
    "recurrent_gemma": dict(logits_soft_cap=2.0, block_types=["attention"]),
    "cohere": dict(logit_scale=4.0),
    "granite": dict(logits_scaling=0.25),
    "hyperclovax": dict(logits_scaling=0.25),
    "falcon_h1": dict(lm_head_multiplier=4.0),
    "minicpm3": dict(dim_model_base=8),                            # logits_scaling = hidden_size / dim_model_base
    "inkling_text": dict(logits_mup_width_multiplier=4.0),
}


def tiny_hf_model(model_type: str, **fields) -> hf.HFCausalLM:
    """A randomly initialised `model_type` of the byte vocabulary, weights at std 0.3 (large logits, where a
    soft cap bites)."""
    from transformers import AutoConfig, AutoModelForCausalLM
    torch.manual_seed(0)
    config = AutoConfig.for_model(model_type, vocab_size=tokenizer.VOCAB_SIZE, hidden_size=32, intermediate_size=64,
                                  num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, head_dim=16,
                                  max_position_embeddings=64, **fields)
    model = hf.HFCausalLM(AutoModelForCausalLM.from_config(config)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model


@pytest.mark.parametrize("model_type", sorted(TRANSFORMED_LOGITS))
def test_logits_equal_the_hf_models_own_after_its_scale_or_soft_cap(model_type):
    model = tiny_hf_model(model_type, **TRANSFORMED_LOGITS[model_type])
    assert (model.logit_scale, model.logit_cap) != (1.0, None)     # the case exercises a transform
    tokens = torch.randint(0, 256, (2, 12))
    mask = torch.ones_like(tokens, dtype=torch.bool)
    with torch.no_grad():
        assert torch.allclose(logits(model, tokens, mask), model.hf(tokens).logits, atol=1e-5)


def test_a_model_whose_head_transforms_its_hidden_states_is_refused_on_load(tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM
    config = AutoConfig.for_model("bert", vocab_size=tokenizer.VOCAB_SIZE, hidden_size=32, intermediate_size=64,
                                  num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=64,
                                  is_decoder=True, eos_token_id=tokenizer.EOS)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path / "bert")   # BertLMHeadModel: dense, GELU,
    with pytest.raises(run.ConfigError, match="bert: its own logits are not its last hidden state"):  # LayerNorm,
        run.load_model(str(tmp_path / "bert"))                                     # then the output embedding


def test_inkling_cutting_its_logits_to_fewer_ids_is_refused():
    with pytest.raises(run.ConfigError, match="inkling_text: config.unpadded_vocab_size"):
        tiny_hf_model("inkling_text", unpadded_vocab_size=200)


def test_cached_greedy_generation_equals_uncached(model):
    out = assert_cached_greedy_equals_uncached(model, logits)
    assert out.shape[1] == 15


def test_logprobs_equal_a_log_softmax_of_the_hf_logits(model):
    tokens = torch.randint(0, 256, (3, 10))
    mask = torch.ones_like(tokens, dtype=torch.bool)
    logprobs, entropy = token_logprobs(model, tokens, mask, start=4)
    with torch.no_grad():
        logp = F.log_softmax(model.hf(tokens).logits[:, 3:-1], -1)            # (B, 6, V)
    assert torch.allclose(logprobs, logp.gather(-1, tokens[:, 4:, None]).squeeze(-1), atol=1e-5)
    assert torch.allclose(entropy, -(logp.exp() * logp).sum(-1), atol=1e-4)


def test_reward_model_on_an_hf_backbone_trains_every_parameter():
    torch.manual_seed(0)
    assert_one_step_trains_all_but(RewardModel(hf.tiny_gpt2(TINY)), {"head.bias", "backbone.hf.transformer.ln_f.bias"})


def test_likelihood_read_out_on_an_hf_backbone_reaches_every_parameter():
    torch.manual_seed(0)
    model = RewardModel(hf.tiny_gpt2(TINY), likelihood_weight=5.0)
    torch.nn.init.normal_(model.likelihood_gate.weight, std=0.5)   # see test_reward: an open gate's bias is idle
    pairs = [PreferencePair("Q?", "good answer", "bad"), PreferencePair("R?", "fine", "worse answer")]
    bradley_terry_loss(*pair_rewards(model, BYTES, pairs, "cpu")).backward()
    idle = {k for k, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0}
    # through the LM head the final LayerNorm's bias learns too; the head's bias cancels in r_c − r_r
    assert idle <= {"head.bias"}


def test_a_critic_on_a_separate_lm_head_leaves_no_trainable_parameter_without_a_gradient():
    """DistributedDataParallel stops at a parameter that requires a gradient and gets none: the
    value model never calls a Llama-style separate LM head, so its parameters are frozen."""
    from transformers import LlamaConfig, LlamaForCausalLM
    from rlhf_lab.ppo import new_critic
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=tokenizer.VOCAB_SIZE, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=64, tie_word_embeddings=False)
    llama = hf.HFCausalLM(LlamaForCausalLM(config))
    critic = new_critic(RewardModel(llama, likelihood_weight=5.0).requires_grad_(False), llama)
    tokens, mask = BYTES.left_pad([BYTES.encode_prompt("Hi"), BYTES.encode_prompt("Hello")])
    critic.token_scores(tokens, mask).sum().backward()
    assert all(p.grad is not None for p in critic.parameters() if p.requires_grad)
    assert not critic.backbone.hf.lm_head.weight.requires_grad
    reads_the_head = RewardModel(hf.HFCausalLM(LlamaForCausalLM(config)), likelihood_weight=5.0)
    assert all(p.requires_grad for p in reads_the_head.parameters())


def test_reward_model_on_opt_reads_the_width_its_trunk_returns():
    """OPT with word_embed_proj_dim < hidden_size projects its final hidden states down (project_out),
    so the reward head and the likelihood gate read word_embed_proj_dim features, not hidden_size."""
    from transformers import OPTConfig, OPTForCausalLM
    torch.manual_seed(0)
    config = OPTConfig(vocab_size=tokenizer.VOCAB_SIZE, hidden_size=32, word_embed_proj_dim=16, ffn_dim=64,
                       num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=64)
    model = RewardModel(hf.HFCausalLM(OPTForCausalLM(config)), likelihood_weight=1.0)
    tokens, mask = BYTES.left_pad([BYTES.encode_prompt("Hi")])
    assert model.config.width == model.backbone.trunk(tokens, positions_from_mask(mask), mask).shape[-1] == 16
    pairs = [PreferencePair("Q?", "good answer", "bad"), PreferencePair("R?", "fine", "worse answer")]
    chosen, rejected = pair_rewards(model, BYTES, pairs, "cpu")
    assert chosen.shape == rejected.shape == (2,)


def test_save_pretrained_then_load_model_round_trips(model, tmp_path):
    model.hf.save_pretrained(tmp_path)
    loaded = run.load_model(tmp_path)
    assert isinstance(loaded, hf.HFCausalLM)
    assert loaded.config == model.config
    tokens, mask = BYTES.left_pad([BYTES.encode_prompt("Hi"), BYTES.encode_prompt("Hello")])
    with torch.no_grad():
        assert torch.equal(logits(loaded.eval(), tokens, mask), logits(model, tokens, mask))


def test_a_half_precision_checkpoint_loads_in_fp32(model, tmp_path):
    model.hf.to(torch.bfloat16).save_pretrained(tmp_path)          # as most published checkpoints are
    loaded = run.load_model(tmp_path)
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    tokens, mask = BYTES.left_pad([BYTES.encode_prompt("Hi")])
    token_logprobs(loaded, tokens, mask, 1)                         # bf16 weights failed here


def test_llama_attention_dropout_is_off_in_training_mode():
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=tokenizer.VOCAB_SIZE, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                         attention_dropout=0.5)
    model = hf.HFCausalLM(LlamaForCausalLM(config)).train()        # PPO keeps the policy in training mode
    tokens, mask = BYTES.left_pad([BYTES.encode_prompt("Hello there")])
    first, second = (token_logprobs(model, tokens, mask, 1)[0] for _ in range(2))
    assert torch.equal(first, second)


def test_our_checkpoint_of_an_hf_model_rebuilds_it_with_tied_weights(model, tmp_path):
    """GPT-2 ties its LM head to the input embedding (one storage, two names), which
    safetensors refuses to save as such; the checkpoint's metadata rebuilds the HF model."""
    run.save_model(tmp_path / "model.safetensors", model)
    loaded = run.load_model(tmp_path)
    assert isinstance(loaded, hf.HFCausalLM)
    assert loaded.hf.get_output_embeddings().weight is loaded.hf.get_input_embeddings().weight
    tokens, mask = BYTES.left_pad([BYTES.encode_prompt("Hi"), BYTES.encode_prompt("Hello")])
    with torch.no_grad():
        assert torch.equal(logits(loaded.eval(), tokens, mask), logits(model, tokens, mask))


def test_reward_model_ppo_and_eval_run_from_an_hf_checkpoint(tmp_path):
    """`--sft` naming a save_pretrained directory: every stage after SFT runs on the HF
    model (PPO with PPO-ptx's LM loss too), and its checkpoints load back as HF models."""
    from rlhf_lab import cli
    from rlhf_lab.model import GPTConfig
    from rlhf_lab.reward import load_reward_model

    torch.manual_seed(0)
    sft = tmp_path / "hf"
    hf.tiny_gpt2(GPTConfig(context_len=256, width=32, n_layers=2, n_heads=2, ffn=64)).hf.save_pretrained(sft)
    common = ["--sft", str(sft), "--device", "cpu"]
    assert cli.main(["train-rm", *common, "--out", str(tmp_path / "rm"), "--pairs", "84", "--batch-size", "2",
                     "--epochs", "1", "--norm-samples", "8", "--heldout-pairs", "21"]) == 0
    assert cli.main(["ppo", *common, "--rm", str(tmp_path / "rm"), "--out", str(tmp_path / "ppo"), "--iterations", "2",
                     "--batch-size", "4", "--minibatch-size", "2", "--max-new-tokens", "8", "--ptx-coef", "0.5"]) == 0
    assert cli.main(["eval", *common, "--rm", str(tmp_path / "rm"), "--policy", str(tmp_path / "ppo"),
                     "--prompts", "4", "--samples-per-prompt", "1", "--out", str(tmp_path / "eval")]) == 0
    reward_model, policy = load_reward_model(tmp_path / "rm"), run.load_model(tmp_path / "ppo")
    assert isinstance(reward_model.backbone, hf.HFCausalLM) and isinstance(policy, hf.HFCausalLM)
    start = run.load_model(sft).state_dict()
    assert any(not torch.equal(v, start[k]) for k, v in policy.state_dict().items())   # PPO moved it
    assert "gold_win_rate_vs_sft" in run.read_json(tmp_path / "eval" / "metrics.json")


def test_a_model_with_its_own_vocabulary_is_refused_on_load(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel
    GPT2LMHeadModel(GPT2Config(vocab_size=300, n_positions=32, n_embd=16, n_layer=1, n_head=2)).save_pretrained(tmp_path)
    with pytest.raises(run.ConfigError, match="a vocabulary of 300 ids"):
        run.load_model(tmp_path)


def test_compile_says_a_hugging_face_model_runs_eagerly(model, capsys):
    run.compile_if(True, model)
    assert "HFCausalLM has no MiniGPT blocks and runs eagerly" in capsys.readouterr().out


# ------------------------------------------------------------------ a model with its own tokenizer

def world_bpe():
    """A byte-level BPE tokenizer of 400 ids trained here on world text (no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from rlhf_lab.world import World

    texts = [row["prompt"] + " " + row["response"] for row in World().sft_examples("train", 2000, 0)]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>")


@pytest.fixture(scope="module")
def bpe_model_dir(tmp_path_factory):
    """A tiny GPT-2 of world_bpe's vocabulary saved with it, as `save_pretrained` of a
    pretrained model and its tokenizer leaves them."""
    from transformers import GPT2Config, GPT2LMHeadModel
    hf_tokenizer = world_bpe()
    path = tmp_path_factory.mktemp("bpe_gpt2")
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(hf_tokenizer), n_positions=256, n_embd=32, n_layer=2, n_head=2,
                               n_inner=64, bos_token_id=0, eos_token_id=0)).save_pretrained(path)
    hf_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def chat_model_dir(tmp_path_factory):
    """A chat model's layout: a tiny Llama, a pad token of its own and a chat template."""
    from transformers import LlamaConfig, LlamaForCausalLM
    hf_tokenizer = world_bpe()
    hf_tokenizer.add_special_tokens({"pad_token": "<pad>"})
    hf_tokenizer.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }}\n{% endfor %}"
                                  "{% if add_generation_prompt %}<|assistant|> {% endif %}")
    path = tmp_path_factory.mktemp("chat_llama")
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(hf_tokenizer), hidden_size=32, intermediate_size=64,
                                 num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=320,
                                 bos_token_id=0, eos_token_id=0, pad_token_id=hf_tokenizer.pad_token_id)
                     ).save_pretrained(path)
    hf_tokenizer.save_pretrained(path)
    return path


def test_a_model_saved_with_its_tokenizer_encodes_with_it(bpe_model_dir):
    model = run.load_model(bpe_model_dir)
    tok = model.tokenizer
    assert isinstance(tok, hf.HFTokenizer) and tok.vocab_size == 400 and model.config.vocab_size == 400
    tokens, start = tok.encode_pair("What is the capital of France?", "Paris. 안녕")
    assert len(tokens) < len("What is the capital of France?Paris. 안녕".encode())     # subwords, not bytes
    assert tokens[0] == tok.bos and tokens[-1] == tok.eos
    assert tok.decode(tokens[:start]) == "What is the capital of France?" + hf.PROMPT_END
    assert tok.decode(tokens[start:]) == "Paris. 안녕"                                  # EOS is special: dropped
    # GPT-2's one special token is BOS, EOS and PAD at once: EOS must stay samplable
    assert tok.pad == tok.eos and tok.never_sampled == []
    assert tok.truncate_prompt("é" * 20, 1) == "é" * 19            # not a cut character's "\ufffd" + "é" * 19
    tokens, start = tok.encode_pair("Why?", "It prints <|endoftext|> here.")   # a special token's name, as text
    assert tok.eos not in tokens[1:-1] and tok.decode(tokens[start:]) == "It prints <|endoftext|> here."


def test_a_chat_template_frames_the_prompt_and_a_pad_token_is_never_sampled(bpe_model_dir):
    from transformers import AutoTokenizer
    raw = AutoTokenizer.from_pretrained(bpe_model_dir)
    raw.chat_template = "{% for m in messages %}User: {{ m['content'] }}\n{% endfor %}Assistant:"
    raw.add_special_tokens({"pad_token": "<pad>"})
    tok = hf.HFTokenizer(raw)
    assert tok.decode(tok.encode_prompt("Name three colours.")) == "User: Name three colours.\nAssistant:"
    assert tok.never_sampled == [tok.pad] and tok.pad != tok.eos


def test_a_tokenizer_larger_than_the_models_vocabulary_is_refused(bpe_model_dir, tmp_path):
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel
    small = GPT2Config(vocab_size=300, n_positions=32, n_embd=16, n_layer=1, n_head=2)
    GPT2LMHeadModel(small).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(bpe_model_dir).save_pretrained(tmp_path)
    with pytest.raises(run.ConfigError, match="the tokenizer has 400 ids but the model embeds only 300"):
        run.load_model(tmp_path)


@pytest.mark.parametrize("layout", ["bpe_model_dir", "chat_model_dir"])
def test_the_pipeline_runs_on_a_model_with_its_own_tokenizer(layout, request, tmp_path):
    """SFT from the pretrained directory (--init), a reward model on the SFT run, PPO, eval and
    rlhf sample: every stage encodes with the model's tokenizer, and every checkpoint carries it.
    A GPT-2 whose one special token is BOS, EOS and PAD; a Llama with a chat template."""
    from rlhf_lab import cli
    from rlhf_lab.reward import load_reward_model

    bpe_model_dir = request.getfixturevalue(layout)

    sft, rm, policy = (str(tmp_path / name) for name in ("sft", "rm", "ppo"))
    assert cli.main(["sft", "--init", str(bpe_model_dir), "--out", sft, "--steps", "60", "--examples", "2000",
                     "--eval-every", "30", "--eval-samples", "8", "--lr", "3e-3", "--device", "cpu"]) == 0
    log = (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()
    losses = [json.loads(line)["sft/eval_loss"] for line in log]
    assert losses[-1] < losses[0]                                   # it learned through the BPE ids
    common = ["--sft", sft, "--device", "cpu"]
    assert cli.main(["train-rm", *common, "--out", rm, "--pairs", "84", "--batch-size", "2", "--epochs", "1",
                     "--norm-samples", "8", "--heldout-pairs", "21"]) == 0
    assert cli.main(["ppo", *common, "--rm", rm, "--out", policy, "--iterations", "2", "--batch-size", "4",
                     "--minibatch-size", "2", "--max-new-tokens", "8", "--ptx-coef", "0.5"]) == 0
    assert cli.main(["eval", *common, "--rm", rm, "--policy", policy, "--prompts", "4", "--samples-per-prompt", "1",
                     "--out", str(tmp_path / "eval")]) == 0
    assert cli.main(["sample", "--models", sft, policy, "--rm", rm, "--prompts", "What is 3 plus 4?"]) == 0
    original = run.load_model(bpe_model_dir).tokenizer
    for loaded in (run.load_model(sft), run.load_model(policy), load_reward_model(rm)):
        assert loaded.tokenizer == original                         # the checkpoint alone rebuilt it
    assert "gold_win_rate_vs_sft" in run.read_json(tmp_path / "eval" / "metrics.json")


def test_ppo_refuses_a_reward_model_that_reads_another_tokenizer(bpe_model_dir):
    from rlhf_lab import ppo
    byte_reward_model = RewardModel(hf.tiny_gpt2(TINY))
    with pytest.raises(run.ConfigError, match="different tokenizers"):
        ppo.check_reads_whole_rollouts(ppo.PPOConfig(), byte_reward_model, run.load_model(bpe_model_dir))


def test_eval_refuses_a_policy_and_sft_model_of_different_tokenizers(bpe_model_dir, tmp_path):
    from rlhf_lab.evaluate import EvalConfig, compare
    hf.tiny_gpt2(TINY).hf.save_pretrained(tmp_path / "bytes")
    with pytest.raises(run.ConfigError, match="different tokenizers"):
        compare(EvalConfig(policy=str(bpe_model_dir), sft=str(tmp_path / "bytes"), rm=str(tmp_path), device="cpu"))


def test_ids_past_the_tokenizers_vocabulary_are_never_sampled(bpe_model_dir, tmp_path):
    """Pretrained embeddings are often padded past the tokenizer's last id (to a multiple of 64)."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel
    from rlhf_lab.model import SamplingConfig, generate
    from rlhf_lab.rollout import encode_prompts
    padded = GPT2Config(vocab_size=448, n_positions=64, n_embd=16, n_layer=1, n_head=2)
    GPT2LMHeadModel(padded).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(bpe_model_dir).save_pretrained(tmp_path)
    model = run.load_model(tmp_path)
    head = model.lm_head
    model.lm_head = lambda hidden: head(hidden) + 100.0 * (torch.arange(448) >= 400)   # the padding ids win
    tokens = generate(model, *encode_prompts(model.tokenizer, ["What is 2 plus 2?"], "cpu"),
                      SamplingConfig(max_new_tokens=6)).tokens
    assert tokens.max() < 400


def test_muon_leaves_an_untied_output_head_and_the_embeddings_to_adamw(chat_model_dir):
    from rlhf_lab import optim
    model = run.load_model(chat_model_dir)
    hidden = {id(p) for p in optim.hidden_matrices([model])}
    names = {name for name, p in model.named_parameters() if id(p) in hidden}
    assert not model.hf.config.tie_word_embeddings
    assert names == {name for name, p in model.named_parameters() if p.dim() == 2 and ".layers." in name}
    assert len(names) == 2 * 7                                # q, k, v, o, gate, up, down per layer
