"""Errors about the user's data: each names the file and the entry at fault."""


class DatasetError(ValueError):
    """A dataset folder or annotation file that does not have the expected layout."""


class ImageReadError(RuntimeError):
    """An image file that is missing or cannot be decoded."""
