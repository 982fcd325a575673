"""The errors a user can cause, in one place: each message names the file, entry or key.

The tools print these as one line and exit 2 (`USER_ERRORS`); anything else is a bug and
keeps its traceback. `NonFiniteLossError` is the training run's own verdict (exit 1).
"""


class ConfigError(ValueError):
    """A config file or override that does not fit the config's dataclasses."""


class DatasetError(ValueError):
    """A dataset folder or annotation file that does not have the expected layout."""


class UsageError(ValueError):
    """Command-line arguments that cannot be honoured together (e.g. an output folder that
    holds the inputs)."""


class ImageReadError(RuntimeError):
    """An image file that is missing or cannot be decoded."""


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable, or not what the caller expects."""


class WeightsError(ValueError):
    """A weight file that does not fit the model."""


class RunDirectoryError(OSError):
    """A run directory that cannot be created or written (read-only, no permission)."""


class NonFiniteLossError(RuntimeError):
    """A step produced a NaN or infinite loss; training stopped before applying it."""


# Caused by what the user gave (a file, a key, a value): one clear line, no traceback.
USER_ERRORS = (
    ConfigError,
    CheckpointError,
    DatasetError,
    ImageReadError,
    WeightsError,
    FileExistsError,
    FileNotFoundError,
    RunDirectoryError,
    UsageError,
)
