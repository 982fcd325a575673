"""Datasets, transforms and mixup for classification and detection."""
