"""Every image of a dataset decoded once before training, so that a bad file stops a run
(or is skipped, with `data.skip_bad_images`) before it trains, not at its first
evaluation hours later.

The outcome of each file, its (width, height) after decoding or why it cannot be read,
is remembered in the user's cache (`$DETECT_TRICKS_CACHE`, default
`~/.cache/detect_tricks/image_checks.json`) under its path, size and modification time:
the next run of the same data decodes nothing again.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from detect_tricks.core.errors import ImageReadError
from detect_tricks.data.image import read_rgb

Outcome = tuple[int, int] | str  # (width, height), or why the file cannot be read
logger = logging.getLogger(__name__)


def cache_path() -> Path:
    root = os.environ.get("DETECT_TRICKS_CACHE") or Path.home() / ".cache" / "detect_tricks"
    return Path(root) / "image_checks.json"


def check_images(paths: list[str], workers: int | None = None) -> list[Outcome]:
    """Each path's decoded (width, height), or the reason it cannot be read; files not in
    the cache are decoded in parallel threads (OpenCV releases the GIL)."""
    cached = _read_cache()
    keys = [_file_key(path) for path in paths]
    todo = [i for i, key in enumerate(keys) if key not in cached]
    outcomes: dict[int, Outcome] = {i: cached[keys[i]] for i in range(len(paths)) if i not in todo}
    if todo:
        workers = workers or os.cpu_count() or 1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            decoded = pool.map(_check_one, [paths[i] for i in todo])
            shown = len(todo) > 500
            if shown:
                logger.info("checking %d images once (remembered in %s)", len(todo), cache_path())
            bar = tqdm(decoded, total=len(todo), desc="checking images", disable=not shown)
            for i, outcome in zip(todo, bar, strict=True):
                outcomes[i] = outcome
                if keys[i] != "":
                    cached[keys[i]] = outcome
        _write_cache(cached)
    return [outcomes[i] for i in range(len(paths))]


def _check_one(path: str) -> Outcome:
    try:
        image = read_rgb(path)
    except ImageReadError as err:
        return str(err)
    return image.shape[1], image.shape[0]


def _file_key(path: str) -> str:
    """`path|size|mtime` of the file as it is now; "" when it cannot be stat'ed (never
    cached: the file may appear)."""
    try:
        stat = os.stat(path)
    except OSError:
        return ""
    return f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}"


def _read_cache() -> dict[str, Outcome]:
    path = cache_path()
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}  # no cache yet, or a damaged one: check again
    if not isinstance(raw, dict):
        return {}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}


def _write_cache(entries: dict[str, Outcome]) -> None:
    """Write the cache atomically; a cache that cannot be written only costs time."""
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(entries))
        os.replace(temporary, path)
    except OSError as err:
        logger.warning("cannot remember the image checks in %s: %s", path, err)


def readable_indices(
    paths: list[str],
    source: str,
    skip_bad_images: bool,
    sizes: list[tuple[int, int]] | None = None,
) -> list[int]:
    """The positions of the images that decode (at their annotated (width, height), when
    `sizes` gives them). Any other is an error naming it, or with `skip_bad_images` is
    left out, counted in one warning."""
    kept, problems = [], []
    for index, outcome in enumerate(check_images(paths)):
        expected = sizes[index] if sizes is not None else None
        if isinstance(outcome, str):
            problems.append(outcome)
        elif expected is not None and outcome != expected:
            problems.append(
                f"{paths[index]} is {outcome[0]}x{outcome[1]} pixels but {source} says "
                f"{expected[0]}x{expected[1]}"
            )
        else:
            kept.append(index)
    if problems and not skip_bad_images:
        more = f" (and {len(problems) - 1} more bad images)" if len(problems) > 1 else ""
        raise ImageReadError(
            f"{problems[0]}{more}: found checking {source} before training "
            "(data.skip_bad_images: true leaves such images out)"
        )
    if problems:
        logger.warning(
            "%s: left out %d unreadable images (data.skip_bad_images); the first: %s",
            source,
            len(problems),
            problems[0],
        )
    return kept
