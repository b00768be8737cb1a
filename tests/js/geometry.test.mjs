// web/static/queue/geometry.js: the viewer's coordinate maths.
import assert from "node:assert/strict";
import {test} from "node:test";

import {
  FIT_PAD, MAX_SCALE, boxView, fitView, inImage, intersect, panView, toImage, toScreen, wheelFactor, zoomLabel, zoomView,
} from "../../web/static/queue/geometry.js";

const close = (a, b) => assert.ok(Math.abs(a - b) < 1e-9, `${a} != ${b}`);

test("a fitted image is centred and touches the padding on its tighter side", () => {
  const v = fitView(1000, 500, 200, 100);
  close(v.scale, (500 - 2 * FIT_PAD) / 100);
  close(v.ty, FIT_PAD);
  close(v.tx, (1000 - 200 * v.scale) / 2);
  assert.equal(fitView(10, 10, 100, 100).scale, 1); // no room: scale 1 rather than a negative one
});

test("image and screen coordinates are inverse", () => {
  const v = {scale: 2.5, tx: 30, ty: -12};
  const s = toScreen(v, 17, 4);
  assert.deepEqual(s, {x: 72.5, y: -2});
  const p = toImage(v, s.x, s.y);
  close(p.x, 17);
  close(p.y, 4);
});

test("zooming keeps the point under the pointer fixed and stays within its limits", () => {
  const size = {cssW: 800, cssH: 600, iw: 400, ih: 300};
  const v = {scale: 1, tx: 100, ty: 50};
  const before = toImage(v, 250, 120);
  const z = zoomView(v, 250, 120, 2, size);
  assert.equal(z.scale, 2);
  const after = toImage(z, 250, 120);
  close(after.x, before.x);
  close(after.y, before.y);
  assert.equal(zoomView(v, 0, 0, 1e6, size).scale, MAX_SCALE);
  assert.equal(zoomView(v, 0, 0, 1e-6, size).scale, 2 * 0.25); // a quarter of the fitting scale (800/400)
});

test("a box fills about half the view, centred", () => {
  const v = boxView([100, 50, 40, 20], 800, 600);
  assert.equal(v.scale, Math.min(800 / 80, 600 / 40));
  const c = toScreen(v, 120, 60);
  close(c.x, 400);
  close(c.y, 300);
  assert.equal(boxView([0, 0, 0, 0], 1e6, 1e6).scale, MAX_SCALE); // a dot does not zoom forever
});

test("pan, wheel factor, in-image test, intersection and the zoom label", () => {
  assert.deepEqual(panView({scale: 3, tx: 1, ty: 2}, 10, -5), {scale: 3, tx: 11, ty: -3});
  assert.equal(wheelFactor(0), 1);
  assert.ok(wheelFactor(-100) > 1 && wheelFactor(100) < 1);
  close(wheelFactor(3, 1), wheelFactor(120, 0)); // a line is 40 pixels
  close(wheelFactor(1, 2), wheelFactor(800, 0)); // a page is 800 pixels
  assert.equal(inImage({x: 0, y: 0}, 10, 5), true);
  assert.equal(inImage({x: 9.99, y: 4.99}, 10, 5), true);
  assert.equal(inImage({x: 10, y: 1}, 10, 5), false);
  assert.equal(inImage({x: -0.1, y: 1}, 10, 5), false);
  assert.deepEqual(intersect({x: 0, y: 0, w: 10, h: 10}, {x: 5, y: 8, w: 10, h: 10}), {x: 5, y: 8, w: 5, h: 2});
  assert.ok(intersect({x: 0, y: 0, w: 2, h: 2}, {x: 5, y: 5, w: 1, h: 1}).w <= 0);
  assert.equal(zoomLabel(1.234), "123 %");
});
