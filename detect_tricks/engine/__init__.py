"""The training engine shared by the classification and detection tools."""
