"""detect_tricks: the Bag of Tricks and Bag of Freebies for classification and YOLOv3."""

__version__ = "0.1.0"
