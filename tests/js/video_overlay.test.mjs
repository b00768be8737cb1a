// web/static/queue/video/overlay.js MaskletFrames: a masklet's frames read page by page (the server
// answers at most 500 frames a call; frames where the object is absent have no row).
import assert from "node:assert/strict";
import {test} from "node:test";

import {MaskletFrames} from "../../web/static/queue/video/overlay.js";

const RLE = {size: [2, 2], counts: "04"};

function server(present, perCall) {
  const asked = [];
  const api = async (method, path) => {
    asked.push(path);
    const q = new URL(path, "http://x").searchParams;
    const start = Number(q.get("start")), end = Number(q.get("end"));
    const frames = present.filter((i) => i >= start && i <= end).slice(0, perCall)
      .map((i) => ({frame_index: i, rle: RLE, bbox: [0, 0, 2, 2], score: 0.5}));
    return {mask_id: 3, frames};
  };
  return {asked, api};
}

test("a masklet's frames are read page by page, from after the last frame each answer brought", async () => {
  const present = [2, 3, 4, 7, 8, 11, 12];
  const {asked, api} = server(present, 3);
  const store = new MaskletFrames(api);
  let pages = 0;
  await store.load({id: 3, first_frame: 2, last_frame: 12}, () => pages++);
  assert.deepEqual(asked, ["/video/masklets/3/frames?start=2&end=12", "/video/masklets/3/frames?start=5&end=12",
    "/video/masklets/3/frames?start=12&end=12"]); // 3 a call: 2–4, then 7, 8, 11, then 12
  assert.deepEqual(store.indices(3).sort((a, b) => a - b), present);
  assert.equal(pages, asked.length);
  assert.deepEqual(store.at(3, 7), {rle: RLE, bbox: [0, 0, 2, 2], score: 0.5});
  assert.equal(store.at(3, 5), null); // absent there
  assert.equal(store.at(9, 7), null); // another masklet
});

test("an answer that brings nothing ends the reading", async () => {
  const {asked, api} = server([], 500);
  const store = new MaskletFrames(api);
  await store.load({id: 3, first_frame: 0, last_frame: 40});
  assert.equal(asked.length, 1);
  assert.deepEqual(store.indices(3), []);
});
