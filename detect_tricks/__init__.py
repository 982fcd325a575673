"""detect_tricks: the Bag of Tricks and Bag of Freebies for classification and YOLOv3."""

import os

# albumentations asks PyPI for a newer version when it is imported: on an offline node
# that prints a warning in every process, and where DNS hangs instead of failing it
# stalls every start. Its documented switch turns the check off; a user's own setting
# of the variable wins.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
