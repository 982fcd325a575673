"""Pascal VOC XML data (`Annotations/`, `JPEGImages/`, `ImageSets/Main/*.txt`), read into
the COCO form, so training, evaluation and `tools/voc2coco.py` share one code path.

`difficult` objects are handled as VOC does: left out of training and ignored by the
evaluation (they become `iscrowd` regions, which COCOeval neither rewards nor
penalises), unless `use_difficult`. Coordinates are kept as written in the XML. Image
sizes of 0 or missing (it happens in real files) are read from the image itself.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from detect_tricks.core.errors import DatasetError, ImageReadError
from detect_tricks.data.coco import CocoDetection, read_text
from detect_tricks.data.image import read_rgb

DIFFICULT_VALUES = {"0": False, "1": True, "false": False, "true": True}


def _text(node: ET.Element, path: str, xml: Path) -> str:
    found = node.find(path)
    if found is None or found.text is None:
        raise DatasetError(f"{xml}: no <{path}> element")
    return found.text.strip()


def _number(node: ET.Element, path: str, xml: Path, where: str) -> float:
    """The finite number in `<path>`; an error names the file, the object and the text."""
    text = _text(node, path, xml)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DatasetError(f"{xml}: {where} <{path}> must be a number, got {text!r}")
    return value


def _difficult(node: ET.Element, xml: Path, where: str) -> bool:
    """VOC writes 0 or 1; true/false are read too, anything else is an error."""
    text = (node.findtext("difficult") or "0").strip().lower()
    if text not in DIFFICULT_VALUES:
        raise DatasetError(f"{xml}: {where} <difficult> must be 0 or 1, got {text!r}")
    return DIFFICULT_VALUES[text]


def _read_xml(xml: Path) -> ET.Element:
    try:
        return ET.parse(xml).getroot()
    except FileNotFoundError as err:
        raise DatasetError(f"annotation file {xml} does not exist") from err
    except OSError as err:
        raise DatasetError(f"cannot read annotation file {xml}: {err.strerror}") from None
    except ET.ParseError as err:
        raise DatasetError(f"{xml} is not valid XML: {err}") from err


def split_ids(root: Path, split: str | Path) -> list[str]:
    """Image ids of a split file (`ImageSets/Main/trainval.txt` or a path to one)."""
    path = Path(split) if Path(split).is_file() else root / "ImageSets" / "Main" / f"{split}.txt"
    if not path.is_file():
        raise DatasetError(f"no split file {path} (expected ImageSets/Main/<split>.txt)")
    text = read_text(path, "a VOC split file")
    if text.lstrip().startswith(("{", "[")):
        raise DatasetError(
            f"{path} is JSON, not a VOC split file (one image id per line): is data.format "
            "coco meant?"
        )
    return [line.split()[0] for line in text.splitlines() if line.strip()]


def voc_to_coco(
    root: str | Path,
    split: str | Path,
    classes: list[str] | None = None,
    use_difficult: bool = False,
) -> dict[str, Any]:
    """The COCO-format dict of a VOC split; classes default to the sorted names found."""
    root = Path(root)
    parsed = []
    for image_id in split_ids(root, split):
        xml = root / "Annotations" / f"{image_id}.xml"
        parsed.append((xml, _read_xml(xml)))
    names = classes or sorted({_text(o, "name", x) for x, r in parsed for o in r.iter("object")})
    category_of = {name: i + 1 for i, name in enumerate(names)}
    images, annotations = [], []
    for number, (xml, node) in enumerate(parsed, start=1):
        file_name = node.findtext("filename") or f"{xml.stem}.jpg"
        width, height = _image_size(node, root / "JPEGImages" / file_name, xml)
        images.append({"id": number, "file_name": file_name, "width": width, "height": height})
        for index, obj in enumerate(node.iter("object")):
            where = f"object {index}"
            name = _text(obj, "name", xml)
            if name not in category_of:
                raise DatasetError(f"{xml}: class '{name}' is not one of {names}")
            x0, y0, x1, y1 = (
                _number(obj, f"bndbox/{k}", xml, where) for k in ("xmin", "ymin", "xmax", "ymax")
            )
            if x1 < x0 or y1 < y0:
                raise DatasetError(
                    f"{xml}: {where} has xmax < xmin or ymax < ymin ({x0}, {y0}, {x1}, {y1})"
                )
            difficult = int(_difficult(obj, xml, where))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": number,
                    "category_id": category_of[name],
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": int(bool(difficult) and not use_difficult),
                    "difficult": difficult,
                }
            )
    categories = [{"id": i, "name": name} for name, i in category_of.items()]
    return {"images": images, "annotations": annotations, "categories": categories}


def _image_size(node: ET.Element, image: Path, xml: Path) -> tuple[int, int]:
    """`<size>` as written, or read from the image when it is 0 or missing."""
    width, height = (
        _number(node, f"size/{key}", xml, "the image") if node.findtext(f"size/{key}") else 0
        for key in ("width", "height")
    )
    width, height = int(width), int(height)
    if width > 0 and height > 0:
        return width, height
    try:
        pixels = read_rgb(image)
    except ImageReadError as err:
        raise DatasetError(f"{xml}: no size written and the image cannot be read ({err})") from None
    return pixels.shape[1], pixels.shape[0]


def read_voc(
    root: str | Path,
    split: str | Path,
    classes: list[str] | None = None,
    use_difficult: bool = False,
    skip_bad_images: bool = False,
) -> CocoDetection:
    """A VOC split as a `CocoDetection` (images under `root/JPEGImages`)."""
    data = voc_to_coco(root, split, classes, use_difficult)
    return CocoDetection(
        data, Path(root) / "JPEGImages", skip_bad_images, source=f"{root} ({Path(split).name})"
    )
