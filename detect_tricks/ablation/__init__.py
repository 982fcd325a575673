"""Ablation ladders: which trick pays, measured over seeds with intervals (tools/ablate.py)."""
