"""ImageFolder / ImageNet layout classification dataset: `<root>/<class>/<image>`.

Classes are the sorted sub-folder names of the training split; the validation split
uses the training split's class list. Files are taken by image extension and decoded by
content. An unreadable image stops with an error naming the file, unless
`skip_bad_images`: then a readable neighbour stands in and the file is counted.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from detect_tricks.core.errors import DatasetError, ImageReadError
from detect_tricks.data.image import IMAGE_EXTENSIONS, list_image_files, read_rgb
from detect_tricks.data.image_check import readable_indices
from detect_tricks.data.sampling import SampleKey

ImageTransform = Callable[[np.ndarray, np.random.Generator], torch.Tensor]
logger = logging.getLogger(__name__)


def find_classes(root: Path) -> list[str]:
    """The sorted names of the class folders under `root`."""
    if not root.is_dir():
        raise DatasetError(f"no folder at {root} (expected {root}/<class>/<image files>)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError(f"{root} has no class folders (expected {root}/<class>/<image files>)")
    return classes


class ImageFolderDataset(Dataset):
    """(image tensor, label) pairs from class folders.

    Args:
        root: the split's folder, holding one folder per class.
        transform: turns an RGB uint8 array into a tensor, drawing randomness from the
            generator it is given (seeded per sample by the sampler's key).
        classes: the class list (the training split's), or None to read it from `root`.
        skip_bad_images: skip unreadable files (counted) instead of raising.
    """

    def __init__(
        self,
        root: str | Path,
        transform: ImageTransform,
        classes: list[str] | None = None,
        skip_bad_images: bool = False,
    ) -> None:
        self.root = Path(root)
        found = find_classes(self.root)
        self.classes = classes if classes is not None else found
        unknown = sorted(set(found) - set(self.classes))
        if unknown:
            raise DatasetError(
                f"{self.root} has class folders the training split lacks: {', '.join(unknown[:5])}"
            )
        self.samples: list[tuple[str, int]] = []
        passed_over: Counter[str] = Counter()
        for label, name in enumerate(self.classes):
            folder = self.root / name
            if folder.is_dir():
                images, others = list_image_files(folder)
                self.samples += [(str(f), label) for f in images]
                passed_over += others
        if passed_over:
            counts = ", ".join(f"{n} {kind}" for kind, n in sorted(passed_over.items()))
            logger.info("%s: passed over %s (not read as images)", self.root, counts)
        if not self.samples:
            raise DatasetError(
                f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) under {self.root}"
            )
        self.transform = transform
        self.skip_bad_images = skip_bad_images
        self.bad = torch.zeros(len(self.samples), dtype=torch.bool).share_memory_()

    def __len__(self) -> int:
        return len(self.samples)

    def checked(self) -> ImageFolderDataset:
        """Every file decoded once (`data/image_check.py`): an unreadable one is an error
        naming it, or with `skip_bad_images` is left out (counted)."""
        paths = [path for path, _ in self.samples]
        kept = readable_indices(paths, str(self.root), self.skip_bad_images)
        if len(kept) < len(self.samples):
            self.samples = [self.samples[i] for i in kept]
            self.bad = torch.zeros(len(self.samples), dtype=torch.bool).share_memory_()
        return self

    @property
    def num_skipped(self) -> int:
        """Distinct unreadable files met so far (by any data-loading worker)."""
        return int(self.bad.sum())

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, int]:
        image, label = self._read(key.index)
        return self.transform(image, np.random.default_rng(key.seed)), label

    def _read(self, index: int) -> tuple[np.ndarray, int]:
        for offset in range(len(self.samples)):
            position = (index + offset) % len(self.samples)
            path, label = self.samples[position]
            try:
                return read_rgb(path), label
            except ImageReadError as err:
                if not self.skip_bad_images:
                    raise ImageReadError(
                        f"{err} (set data.skip_bad_images: true to skip unreadable files)"
                    ) from None
                if not self.bad[position]:
                    self.bad[position] = True
                    logger.warning("skipping unreadable image: %s", err)
        raise DatasetError(f"no image under {self.root} could be decoded")
