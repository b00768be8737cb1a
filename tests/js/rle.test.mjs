// web/static/queue/rle.js: COCO compressed RLE byte-identical to pycocotools (the strings below are
// pycocotools.mask.encode's), bitmaps, measurements and brush editing. The browser runs the same module
// against pycocotools on many more masks (tests/web/test_rle_js.py).
import assert from "node:assert/strict";
import {test} from "node:test";

import * as RLE from "../../web/static/queue/rle.js";

// row-major bitmaps and what pycocotools makes of them: counts, toBbox, area
const CASES = [
  {h: 4, w: 5, rows: ["00000", "01110", "01110", "00000"], counts: "5220003", bbox: [1, 1, 3, 2], area: 6},
  {h: 3, w: 3, rows: ["111", "111", "111"], counts: "09", bbox: [0, 0, 3, 3], area: 9},
  {h: 6, w: 7, rows: ["1100111", "1011010", "0010011", "0110010", "1011001", "0100100"],
    counts: "022OO010O0031M00O034NLO0000", bbox: [0, 0, 7, 6], area: 21},
];
const bitmap = (rows) => Uint8Array.from(rows.join(""), (c) => Number(c));

test("encode matches pycocotools and decode inverts it", () => {
  for (const c of CASES) {
    const bits = bitmap(c.rows);
    assert.deepEqual(RLE.encode(bits, c.h, c.w), {size: [c.h, c.w], counts: c.counts});
    assert.deepEqual(RLE.decode({size: [c.h, c.w], counts: c.counts}), bits);
    assert.deepEqual(RLE.bbox(bits, c.h, c.w), c.bbox);
    assert.equal(RLE.area(bits), c.area);
    assert.equal(RLE.countsToString(RLE.countsFromString(c.counts)), c.counts);
  }
});

test("long runs need several 5-bit groups and negative differences", () => {
  const h = 100000, w = 2, bits = new Uint8Array(h * w);
  for (let y = 70000; y < 99990; y++) bits[y * w] = 1;
  for (let y = 5; y < 60000; y++) bits[y * w + 1] = 1;
  const rle = RLE.encode(bits, h, w);
  assert.equal(rle.counts, "`[T2VYm0?eYm0aQW1");
  assert.deepEqual(RLE.countsFromString(rle.counts), [70000, 29990, 15, 59995, 40000]);
  assert.deepEqual(RLE.decode(rle), bits);
  assert.equal(RLE.area(bits), 89985);
  assert.deepEqual(RLE.bbox(bits, h, w), [0, 5, 2, 99985]);
});

test("run-length arrays decode too; an empty mask is one run of zeros", () => {
  assert.deepEqual(RLE.decode({size: [2, 2], counts: [1, 2, 1]}), Uint8Array.from([0, 1, 1, 0]));
  assert.deepEqual(RLE.runs(new Uint8Array(6), 2, 3), [6]);
  assert.deepEqual(RLE.bbox(new Uint8Array(6), 2, 3), [0, 0, 0, 0]);
});

test("malformed counts and sizes are refused", () => {
  for (const counts of ["0" + String.fromCharCode(20), "\u007f", "P", "9;"]) {
    assert.throws(() => RLE.decode({size: [3, 3], counts}), Error, JSON.stringify(counts));
  }
  assert.throws(() => RLE.countsFromString(12), TypeError);
  assert.throws(() => RLE.encode(new Uint8Array(5), 2, 3), /expected 2x3/);
});

test("a brush stroke paints a line of discs, the eraser clears, clipRect and union bound them", () => {
  const h = 40, w = 60, bits = new Uint8Array(h * w);
  const dirty = RLE.paintLine(bits, h, w, 10, 20, 50, 20, 3, 1);
  assert.deepEqual(RLE.bbox(bits, h, w), [7, 17, 46, 6]);
  assert.ok(dirty.x <= 7 && dirty.y <= 17 && dirty.x + dirty.w >= 53 && dirty.y + dirty.h >= 23);
  const painted = RLE.area(bits);
  RLE.paintDisc(bits, h, w, 30, 20, 4, 0);
  assert.ok(RLE.area(bits) < painted);
  assert.equal(bits[20 * w + 30], 0);
  assert.deepEqual(RLE.clipRect({x: -5, y: 2.5, w: 100, h: 3}, h, w, 1), {x: 0, y: 1, w: 60, h: 6});
  assert.deepEqual(RLE.union({x: 0, y: 0, w: 2, h: 2}, {x: 5, y: 1, w: 1, h: 4}), {x: 0, y: 0, w: 6, h: 5});
  assert.deepEqual(RLE.union(null, {x: 1, y: 1, w: 1, h: 1}), {x: 1, y: 1, w: 1, h: 1});
});

test("rasterize fills the inside, makes the edge opaque and leaves the outside clear", () => {
  const h = 5, w = 5, bits = new Uint8Array(h * w);
  for (let y = 1; y < 4; y++) for (let x = 1; x < 4; x++) bits[y * w + x] = 1;
  const rgba = RLE.rasterize(bits, h, w, {x: 0, y: 0, w, h}, [10, 20, 30], {fillAlpha: 50, edgeAlpha: 255});
  const alpha = (x, y) => rgba[(y * w + x) * 4 + 3];
  assert.equal(alpha(2, 2), 50);
  assert.equal(alpha(1, 1), 255);
  assert.equal(alpha(0, 0), 0);
  assert.deepEqual(Array.from(rgba.slice((2 * w + 2) * 4, (2 * w + 2) * 4 + 3)), [10, 20, 30]);
});
