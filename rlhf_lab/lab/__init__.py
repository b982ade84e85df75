"""The lab: the textbook's experiments, each one command that writes plots and a report.

Every experiment only calls the library (train_reward, train_ppo, evaluate) and writes
a run directory with PNG plots, report.md and report.json. Findings are sentences
computed from the measured numbers, never canned text.
"""
