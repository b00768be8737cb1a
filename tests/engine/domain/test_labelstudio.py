"""Label Studio's formats: our brush codec against the SDK's, polygons, results, the config, signed URLs."""

import numpy as np
import pytest
from label_studio_sdk.converter.brush import decode_rle, encode_rle, mask2rle

from engine.domain import labelstudio as lsf
from engine.domain.labelstudio import LabelStudioFormatError
from engine.domain.masks import decode_mask
from engine.domain.signing import image_signature, signature_valid, signed_image_url

LABELS = ("accept", "reject", "ungroundable")


def _masks():
    rng = np.random.default_rng(7)
    yield np.zeros((1, 1), bool)
    yield np.ones((3, 5), bool)
    yield rng.random((20, 30)) > 0.6  # many runs of one pixel
    big = np.zeros((300, 420), bool)
    big[10:290, 5:400] = True  # runs longer than 65,536 values (4 per pixel)
    big[100:120, 50:60] = False
    yield big


@pytest.mark.parametrize("mask", list(_masks()), ids=["1x1", "full", "noise", "large"])
def test_encode_matches_label_studio_and_decodes_back(mask):
    ours = lsf.encode_brush(mask)
    assert ours == mask2rle(mask.astype(np.uint8) * 255)  # byte for byte the SDK's encoder
    assert np.array_equal(lsf.decode_brush(ours, *mask.shape), mask)
    sdk = decode_rle(ours).reshape(*mask.shape, 4)[:, :, 3] > 0
    assert np.array_equal(sdk, mask)


def test_decode_reads_literal_runs_of_a_coloured_brush():
    """Label Studio's editor stores the RGBA of a coloured, partly transparent brush: literal runs."""
    mask = np.random.default_rng(3).random((40, 50)) > 0.5
    rgba = np.zeros((40, 50, 4), np.uint8)
    rgba[mask] = (232, 89, 12, 255)
    rgba[~mask, 3] = 40  # faint alpha outside: below the 128 threshold
    assert np.array_equal(lsf.decode_brush(encode_rle(rgba.ravel()), 40, 50), mask)


def test_decode_refuses_wrong_size_and_damage():
    rle = lsf.encode_brush(np.ones((10, 10), bool))
    with pytest.raises(LabelStudioFormatError, match="100 pixels, the image 10×12 has 120"):
        lsf.decode_brush(rle, 10, 12)
    with pytest.raises(LabelStudioFormatError, match="middle of a run"):
        lsf.decode_brush(rle[:-3], 10, 10)
    with pytest.raises(LabelStudioFormatError, match="byte values"):
        lsf.decode_brush([0, 300, 1], 10, 10)
    with pytest.raises(LabelStudioFormatError, match="byte values"):
        lsf.decode_brush([], 10, 10)


def test_polygon_in_percent_becomes_a_mask():
    mask = lsf.polygon_mask([[10, 20], [60, 20], [60, 70], [10, 70]], 40, 50)  # x 5..30, y 8..28
    pixels = decode_mask(mask)
    assert pixels[10:26, 7:28].all() and not pixels[:6].any() and not pixels[:, 32:].any()
    assert mask.bbox[0] == pytest.approx(5, abs=1) and mask.bbox[3] == pytest.approx(20, abs=1.5)
    with pytest.raises(LabelStudioFormatError, match="3 or more points"):
        lsf.polygon_mask([[1, 1], [2, 2]], 40, 50)
    with pytest.raises(LabelStudioFormatError, match="not \\[x%, y%\\]"):
        lsf.polygon_mask([[1, 1], [2, "a"], [3, 3]], 40, 50)


def test_results_become_a_label_and_masks():
    drawn = np.zeros((8, 10), bool)
    drawn[2:5, 3:7] = True
    results = [lsf.brush_result(drawn, "a"),
               {"type": "polygonlabels", "from_name": "polygon", "to_name": "image", "original_width": 10,
                "original_height": 8, "value": {"points": [[0, 0], [50, 0], [50, 50]], "polygonlabels": ["instance"]}},
               {"type": "choices", "from_name": "verdict", "to_name": "image", "value": {"choices": ["reject"]}}]
    regions = lsf.read_results(results, LABELS, 8, 10)
    assert regions.label == "reject" and regions.tools == ["brush", "polygon"]
    assert np.array_equal(decode_mask(regions.masks[0]), drawn)
    assert regions.masks[1].area > 0


@pytest.mark.parametrize("result, message", [
    ({"type": "choices", "from_name": "verdict", "value": {"choices": ["maybe"]}}, "unknown choice 'maybe'"),
    ({"type": "choices", "from_name": "verdict", "value": {"choices": ["accept", "reject"]}}, "exactly one"),
    ({"type": "brushlabels", "from_name": "brush", "original_width": 10, "original_height": 8,
      "value": {"format": "rle", "rle": lsf.encode_brush(np.ones((8, 10), bool)), "brushlabels": ["cat"]}},
     "unknown region label"),
    ({"type": "brushlabels", "from_name": "brush", "original_width": 20, "original_height": 8,
      "value": {"format": "rle", "rle": lsf.encode_brush(np.ones((8, 20), bool)), "brushlabels": ["instance"]}},
     "drawn on a 20×8 image, ours is 10×8"),
    ({"type": "brushlabels", "from_name": "brush",
      "value": {"format": "rle", "rle": lsf.encode_brush(np.ones((8, 20), bool)), "brushlabels": ["instance"]}},
     "160 pixels"),
    ({"type": "textarea", "from_name": "notes", "value": {"text": ["x"]}}, "unknown control 'notes'"),
    ({"type": "choices", "from_name": "verdict"}, "not an object with a value"),
])
def test_bad_results_are_refused_with_the_reason(result, message):
    with pytest.raises(LabelStudioFormatError, match=message):
        lsf.read_results([result], LABELS, 8, 10)


def test_config_round_trip_and_mismatch():
    config = lsf.labeling_config(LABELS)
    assert lsf.config_problems(config, LABELS) == []
    assert lsf.config_problems(config, ("complete", "missing", "not_present")) == [
        "choices are ['accept', 'reject', 'ungroundable'], expected ['complete', 'missing', 'not_present']"]
    other = '<View><Image name="image" value="$image"/><Choices name="verdict" toName="image"/></View>'
    problems = lsf.config_problems(other, LABELS)
    assert 'no <Text name="phrase">' in problems and 'no <BrushLabels name="brush">' in problems
    assert lsf.config_problems("<View", LABELS)[0].startswith("the labeling config is not XML")


def test_signed_urls():
    url = signed_image_url("http://h:8/", 12, "k" * 32, 2_000)
    assert url == f"http://h:8/api/v1/images/12/signed?expires=2000&signature={image_signature(12, 2000, 'k' * 32)}"
    good = image_signature(12, 2_000, "k" * 32)
    assert signature_valid(12, 2_000, good, "k" * 32, now=1_999)
    assert not signature_valid(12, 2_000, good, "k" * 32, now=2_001)  # expired
    assert not signature_valid(13, 2_000, good, "k" * 32, now=1_000)  # another image
    assert not signature_valid(12, 2_001, good, "k" * 32, now=1_000)  # a longer expiry
    assert not signature_valid(12, 2_000, good, "x" * 32, now=1_000)  # another secret
