"""rlhf-lab: the RLHF pipeline (SFT, a Bradley-Terry reward model, PPO) in readable PyTorch,
measured against the gold judge of a small assistant world.

One module per stage, in the pipeline's order:
    world.py     the assistant world: prompts, answers in seven styles, the gold judge, annotators
    sft.py       stage 1, supervised fine-tuning
    reward.py    stage 2, the reward model
    ppo.py       stage 3, PPO against the reward model on a KL leash
    evaluate.py  SFT against the policy, judged by gold
    pipeline.py  the stages in a row (`rlhf pipeline`)
Beside them: model.py (MiniGPT and the CausalLM protocol every stage talks to), hf.py (a
Hugging Face model behind that protocol), rollout.py (sampling for PPO and evaluation),
tokenizer.py, data.py (JSONL files), optim.py, run.py (run directories, checkpoints, resume),
distributed.py (torchrun), sample.py (`rlhf sample`), lab/ (experiments on reward hacking)
and cli.py (the `rlhf` command).
"""
