"""Label Studio's formats, pure: its brush RLE ⇄ binary masks, polygons → masks, the labeling config
of a bridged project, and an annotation's results → a label and masks.

Label Studio's brush RLE is not COCO's. It packs the RGBA bytes of the mask image (row-major,
4 bytes per pixel) as a bit stream: a 32-bit value count, the word size - 1 (5 bits), four run-length
field sizes - 1 (4 bits each), then runs: a flag bit (1: one value repeated, 0: literal values), a
2-bit index into the field sizes, the run length - 1 in that many bits, then one value (repeated) or
that many values (literal), each ``word size`` bits; zero bits pad to whole bytes. A pixel belongs to
the mask when its alpha byte is 128 or more.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.domain.masks import MaskError, RleMask, encode_mask, from_coco_segmentation

# names in the labeling config (from_name / to_name of results)
IMAGE = "image"
PHRASE = "phrase"
HINT = "hint"
BRUSH = "brush"
POLYGON = "polygon"
CHOICES = "verdict"
REGION_LABEL = "instance"

_SIZES = (3, 4, 8, 16)
_HEADER_BITS = 32 + 5 + 4 * 4
_MAX_RUN = 2**16
_ASCII_BITS = bytes.maketrans(b"\x00\x01", b"01")


class LabelStudioFormatError(ValueError):
    """A Label Studio result that cannot become our label or mask (the message says which and why)."""


# ---------------------------------------------------------------------------------- brush RLE
def encode_brush(mask: npt.NDArray[Any]) -> list[int]:
    """A binary H×W mask → Label Studio brush RLE bytes (every channel 255 inside, 0 outside; the
    same bytes as ``label_studio_sdk.converter.brush.mask2rle`` of ``mask * 255``)."""
    if mask.ndim != 2:
        raise LabelStudioFormatError(f"a mask must be 2-D, got shape {mask.shape}")
    flat = np.repeat(np.where(mask.reshape(-1) != 0, 255, 0).astype(np.uint8), 4)
    parts = [f"{flat.size:032b}", f"{8 - 1:05b}", "".join(f"{s - 1:04b}" for s in _SIZES)]
    if flat.size:
        change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        starts = np.concatenate(([0], change))
        lengths = np.diff(np.concatenate((starts, [flat.size])))
        for start, length in zip(starts.tolist(), lengths.tolist(), strict=True):
            parts.append(_run_bits(length, int(flat[start])))
    bits = "".join(parts)
    bits += "0" * (8 - len(bits) % 8)  # as Label Studio's own encoder: a whole zero byte when aligned
    return list(int(bits, 2).to_bytes(len(bits) // 8, "big"))


def _run_bits(length: int, value: int) -> str:
    if length == 1:
        return f"000000{value:08b}"  # a literal run of one value
    if length <= 8:
        return f"100{length - 1:03b}{value:08b}"
    if length <= 16:
        return f"101{length - 1:04b}{value:08b}"
    if length <= 256:
        return f"110{length - 1:08b}{value:08b}"
    out = []
    while length > _MAX_RUN:
        out.append(f"111{_MAX_RUN - 1:016b}{value:08b}")
        length -= _MAX_RUN
    out.append(f"111{length - 1:016b}{value:08b}")
    return "".join(out)


class _Bits:
    def __init__(self, data: Sequence[int]) -> None:
        raw = np.asarray(data)
        if raw.ndim != 1 or raw.size == 0 or not np.issubdtype(raw.dtype, np.integer) \
                or raw.min() < 0 or raw.max() > 255:
            raise LabelStudioFormatError("brush RLE must be a non-empty list of byte values 0–255")
        self.bits = np.unpackbits(raw.astype(np.uint8))
        self.text = self.bits.tobytes().translate(_ASCII_BITS).decode("ascii")  # fast short reads
        self.pos = 0

    def read(self, n: int) -> int:
        end = self.pos + n
        if end > self.bits.size:
            raise LabelStudioFormatError("brush RLE ends in the middle of a run")
        value = int(self.text[self.pos:end], 2)
        self.pos = end
        return value

    def read_words(self, count: int, n: int) -> npt.NDArray[np.int64]:
        end = self.pos + count * n
        if end > self.bits.size:
            raise LabelStudioFormatError("brush RLE ends in the middle of a run")
        words = self.bits[self.pos:end].reshape(count, n)
        self.pos = end
        return words.astype(np.int64) @ (1 << np.arange(n - 1, -1, -1, dtype=np.int64))


def decode_brush(rle: Sequence[int], height: int, width: int) -> npt.NDArray[np.bool_]:
    """Label Studio brush RLE → a boolean H×W mask (alpha ≥ 128). Raises LabelStudioFormatError when
    the stream is malformed or holds another number of pixels than ``height × width``."""
    bits = _Bits(rle)
    if bits.bits.size < _HEADER_BITS:
        raise LabelStudioFormatError("brush RLE is shorter than its header")
    num = bits.read(32)
    word = bits.read(5) + 1
    sizes = [bits.read(4) + 1 for _ in range(4)]
    if num != height * width * 4:
        pixels = num / 4
        raise LabelStudioFormatError(f"brush mask holds {pixels:g} pixels, the image {height}×{width} has "
                                     f"{height * width}")
    out = np.zeros(num, dtype=np.uint8)
    i = 0
    while i < num:
        repeated = bits.read(1)
        length = bits.read(sizes[bits.read(2)]) + 1
        end = min(i + length, num)
        if repeated:
            out[i:end] = bits.read(word)
        else:
            out[i:end] = bits.read_words(length, word)[: end - i]
        i = end
    return out[3::4].reshape(height, width) >= 128


# ---------------------------------------------------------------------------------- polygons
def polygon_mask(points: Any, height: int, width: int) -> RleMask:
    """Label Studio polygon points (percent of the image's width and height) → a mask."""
    if not isinstance(points, list) or len(points) < 3:
        raise LabelStudioFormatError("a polygon needs 3 or more points")
    flat: list[float] = []
    for point in points:
        if not (isinstance(point, list | tuple) and len(point) == 2
                and all(isinstance(v, int | float) and math.isfinite(v) for v in point)):
            raise LabelStudioFormatError(f"polygon point {point!r} is not [x%, y%]")
        flat += [point[0] * width / 100.0, point[1] * height / 100.0]
    try:
        return from_coco_segmentation([flat], height, width)
    except MaskError as exc:
        raise LabelStudioFormatError(f"polygon: {exc}") from None


# ---------------------------------------------------------------------------------- the config
def labeling_config(labels: Sequence[str]) -> str:
    """The labeling config of a bridged project: the phrase and a hint as text, the image, brush and
    polygon tools with one region label, and one required choice among our labels for the task kind."""
    choices = "".join(f'<Choice value="{label}"/>' for label in labels)
    return (
        "<View>\n"
        f'  <Header value="Phrase"/>\n  <Text name="{PHRASE}" value="${PHRASE}"/>\n'
        f'  <Text name="{HINT}" value="${HINT}"/>\n'
        f'  <Image name="{IMAGE}" value="${IMAGE}" zoom="true" zoomControl="true"/>\n'
        f'  <BrushLabels name="{BRUSH}" toName="{IMAGE}"><Label value="{REGION_LABEL}" background="#e8590c"/>'
        "</BrushLabels>\n"
        f'  <PolygonLabels name="{POLYGON}" toName="{IMAGE}"><Label value="{REGION_LABEL}" background="#1971c2"/>'
        "</PolygonLabels>\n"
        f'  <Choices name="{CHOICES}" toName="{IMAGE}" choice="single-radio" required="true">{choices}</Choices>\n'
        "</View>"
    )


def config_problems(config: str, labels: Sequence[str]) -> list[str]:
    """What keeps a project's labeling config from being a bridged project for these labels (empty: fine)."""
    try:
        root = ET.fromstring(config)
    except ET.ParseError as exc:
        return [f"the labeling config is not XML ({exc})"]
    tags = {el.get("name"): el for el in root.iter() if el.get("name")}
    problems = []
    for name, tag in ((IMAGE, "Image"), (PHRASE, "Text"), (BRUSH, "BrushLabels"), (POLYGON, "PolygonLabels"),
                      (CHOICES, "Choices")):
        el = tags.get(name)
        if el is None or el.tag != tag:
            problems.append(f"no <{tag} name=\"{name}\">")
        elif tag in ("BrushLabels", "PolygonLabels"):
            regions = {lab.get("value") for lab in el.iter("Label")}
            if regions != {REGION_LABEL}:
                problems.append(f"<{tag} name=\"{name}\"> has labels {sorted(v or '' for v in regions)}, "
                                f"expected [{REGION_LABEL!r}]")
        elif tag == "Choices":
            values = [c.get("value") for c in el.iter("Choice")]
            if sorted(v or "" for v in values) != sorted(labels):
                problems.append(f"choices are {values}, expected {list(labels)}")
    return problems


def brush_result(mask: npt.NDArray[Any], region_id: str) -> dict[str, Any]:
    """A brush region (prediction or annotation result) for a binary H×W mask."""
    height, width = mask.shape
    return {"id": region_id, "type": "brushlabels", "from_name": BRUSH, "to_name": IMAGE,
            "original_width": int(width), "original_height": int(height), "image_rotation": 0,
            "value": {"format": "rle", "rle": encode_brush(mask), "brushlabels": [REGION_LABEL]}}


# ---------------------------------------------------------------------------------- annotations
@dataclass
class Regions:
    """What an annotation says: the chosen label (None: no choice) and its regions as masks."""

    label: str | None = None
    masks: list[RleMask] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)  # brush | polygon, per mask


def read_results(results: Any, labels: Sequence[str], height: int, width: int) -> Regions:
    """An annotation's ``result`` list → the chosen label and the masks of its regions. Unknown
    controls, labels or choices, wrong-size masks and malformed regions raise LabelStudioFormatError."""
    if not isinstance(results, list):
        raise LabelStudioFormatError("an annotation's result must be a list")
    out = Regions()
    for i, result in enumerate(results):
        if not isinstance(result, dict) or not isinstance(result.get("value"), dict):
            raise LabelStudioFormatError(f"result {i} is not an object with a value")
        kind, source, value = str(result.get("type", "")).lower(), result.get("from_name"), result["value"]
        if kind == "choices" and source == CHOICES:
            chosen = value.get("choices")
            if not isinstance(chosen, list) or len(chosen) != 1:
                raise LabelStudioFormatError(f"result {i}: choose exactly one of {', '.join(labels)}")
            if chosen[0] not in labels:
                raise LabelStudioFormatError(f"result {i}: unknown choice {chosen[0]!r} (expected one of "
                                             f"{', '.join(labels)})")
            if out.label is not None and out.label != chosen[0]:
                raise LabelStudioFormatError("the annotation holds two different choices")
            out.label = chosen[0]
        elif (kind, source) in (("brushlabels", BRUSH), ("polygonlabels", POLYGON)):
            _region_label(i, value, kind)
            _check_size(i, result, height, width)
            if kind == "brushlabels":
                if value.get("format", "rle") != "rle":
                    raise LabelStudioFormatError(f"result {i}: brush format {value.get('format')!r} is not rle")
                mask = encode_mask(decode_brush(value.get("rle") or [], height, width))
            else:
                mask = polygon_mask(value.get("points"), height, width)
            out.masks.append(mask)
            out.tools.append(kind.removesuffix("labels"))
        else:
            raise LabelStudioFormatError(f"result {i}: unknown control {source!r} of type {kind!r}")
    return out


def _region_label(i: int, value: dict[str, Any], kind: str) -> None:
    names = value.get(kind)
    if names is not None and (not isinstance(names, list) or any(n != REGION_LABEL for n in names)):
        raise LabelStudioFormatError(f"result {i}: unknown region label {names!r} (expected [{REGION_LABEL!r}])")


def _check_size(i: int, result: dict[str, Any], height: int, width: int) -> None:
    size = (result.get("original_width"), result.get("original_height"))
    if size != (None, None) and size != (width, height):
        raise LabelStudioFormatError(f"result {i}: drawn on a {size[0]}×{size[1]} image, ours is {width}×{height}")
