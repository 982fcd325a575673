"""Foundations that data, models and the engine share: logging and progress, the
process group, checkpoint files."""
