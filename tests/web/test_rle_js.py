"""web/static/queue/rle.js, the browser's COCO RLE codec and mask editing, checked in Chromium against
pycocotools on masks of many shapes (empty, full, noise, large runs, thin lines)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from tests.web.live import browser_page  # noqa: F401 (fixture)

RLE_JS = Path(__file__).resolve().parents[2] / "web" / "static" / "queue" / "rle.js"


def masks() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    out = [np.zeros((1, 1), bool), np.ones((1, 1), bool), np.zeros((5, 7), bool), np.ones((3, 9), bool)]
    for h, w, p in [(2, 3, 0.5), (17, 5, 0.3), (64, 96, 0.02), (120, 160, 0.5), (31, 29, 0.97)]:
        out.append(rng.random((h, w)) < p)
    big = np.zeros((1100, 1300), bool)  # long runs: counts needing 5+ groups, negative differences
    big[100:1000, 40:1250] = True
    big[500:510, :] = False
    big[:, 700] = True
    out.append(big)
    thin = np.zeros((50, 40), bool)
    thin[25, :] = True
    thin[:, 0] = True
    out.append(thin)
    return out


def load(page: Any) -> None:
    """The ES module, imported from a data: URL, as the global ``RLE``."""
    page.goto("about:blank")
    source = "data:text/javascript;base64," + base64.b64encode(RLE_JS.read_bytes()).decode()
    page.evaluate("async (source) => { window.RLE = await import(source); }", source)


def test_encode_and_decode_match_pycocotools(browser_page: Any) -> None:  # noqa: F811
    load(browser_page)
    for mask in masks():
        h, w = mask.shape
        coco = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        counts = coco["counts"].decode()
        got = browser_page.evaluate(
            """([b64, h, w, counts]) => {
                 const mask = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                 const decoded = RLE.decode({size: [h, w], counts});
                 let bin = "";
                 for (let i = 0; i < decoded.length; i += 8192) {
                   bin += String.fromCharCode(...decoded.subarray(i, i + 8192));
                 }
                 return {counts: RLE.encode(mask, h, w).counts, decoded: btoa(bin),
                         area: RLE.area(mask), bbox: RLE.bbox(mask, h, w),
                         runs: RLE.countsFromString(counts), again: RLE.countsToString(RLE.countsFromString(counts))};
               }""",
            [base64.b64encode(mask.astype(np.uint8).tobytes()).decode(), h, w, counts])
        assert got["counts"] == counts, mask.shape
        assert base64.b64decode(got["decoded"]) == mask.astype(np.uint8).tobytes(), mask.shape
        assert got["again"] == counts
        assert got["area"] == int(mask_utils.area(coco))
        assert got["bbox"] == [int(v) for v in mask_utils.toBbox(coco)]
        assert sum(got["runs"]) == h * w


def test_malformed_counts_are_refused(browser_page: Any) -> None:  # noqa: F811
    load(browser_page)
    errors = browser_page.evaluate(
        """() => ["0" + String.fromCharCode(20), "\\u007f", "P", "9;"].map(counts => {
             try { RLE.decode({size: [3, 3], counts}); return null; } catch (e) { return e.message; }
           })""")
    # below "0", above "o", a number cut short, runs past the mask's end
    assert all(errors), errors


def test_brush_and_rasterize(browser_page: Any) -> None:  # noqa: F811
    load(browser_page)
    got = browser_page.evaluate(
        """() => {
             const h = 40, w = 60, bits = new Uint8Array(h * w);
             const dirty = RLE.paintLine(bits, h, w, 10, 20, 50, 20, 3, 1);
             const painted = RLE.area(bits), box = RLE.bbox(bits, h, w);
             RLE.paintDisc(bits, h, w, 30, 20, 4, 0);  // erase a hole in the middle
             const erased = RLE.area(bits);
             const rect = {x: 0, y: 0, w, h};
             const rgba = RLE.rasterize(bits, h, w, rect, [10, 20, 30], {fillAlpha: 50, edgeAlpha: 255});
             const alpha = (x, y) => rgba[(y * w + x) * 4 + 3];
             return {dirty, painted, box, erased, inside: alpha(15, 20), edge: alpha(15, 17), outside: alpha(5, 5),
                     hole: alpha(30, 20), color: Array.from(rgba.slice((20 * w + 15) * 4, (20 * w + 15) * 4 + 3))};
           }""")
    assert got["box"] == [7, 17, 46, 6] and got["painted"] > 200
    d = got["dirty"]
    assert d["x"] <= 7 and d["y"] <= 17 and d["x"] + d["w"] >= 53 and d["y"] + d["h"] >= 23
    assert got["erased"] < got["painted"]
    assert got["inside"] == 50 and got["edge"] == 255 and got["outside"] == 0 and got["hole"] == 0
    assert got["color"] == [10, 20, 30]
