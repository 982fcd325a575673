"""Foundations every layer shares: the config schema, its loader, the error types."""
