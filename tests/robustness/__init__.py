"""The robustness suite (see conftest.py)."""
