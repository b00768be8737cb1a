// web/static/queue/video/frames.js and media.js: frame URLs, the prefetch window, the bounded frame
// cache (each frame loaded once, at most `parallel` at a time, the window pinned), and the frame a
// video task opens on.
import assert from "node:assert/strict";
import {test} from "node:test";

import {FrameCache, clampFrame, frameUrl, prefetchIndices} from "../../web/static/queue/video/frames.js";
import {isVideo, startFrame, taskPicture} from "../../web/static/queue/video/media.js";

const tick = () => new Promise((resolve) => setImmediate(resolve));

test("frame indices stay inside the video and URLs come from the template", () => {
  assert.equal(clampFrame(-3, 10), 0);
  assert.equal(clampFrame(12, 10), 9);
  assert.equal(clampFrame(4.4, 10), 4);
  assert.equal(clampFrame(5, 0), 0);
  assert.equal(frameUrl("/api/v1/video/{video_id}/frames/{index}", 7, 12), "/api/v1/video/7/frames/12");
  assert.equal(frameUrl("/api/v1/video/7/frames/{index}", 7, 0), "/api/v1/video/7/frames/0");
});

test("the prefetch window looks ahead in the direction of play, then a little behind", () => {
  assert.deepEqual(prefetchIndices(5, 20, {ahead: 3, behind: 2}), [5, 6, 7, 8, 4, 3]);
  assert.deepEqual(prefetchIndices(5, 20, {ahead: 3, behind: 2, direction: -1}), [5, 4, 3, 2, 6, 7]);
  assert.deepEqual(prefetchIndices(0, 3, {ahead: 5, behind: 2}), [0, 1, 2]); // clipped at both ends
  assert.deepEqual(prefetchIndices(9, 10, {ahead: 4, behind: 1}), [9, 8]);
});

function loader() {
  const calls = [], pending = new Map();
  const load = (i) => { calls.push(i); return new Promise((resolve, reject) => pending.set(i, {resolve, reject})); };
  const finish = (i, ok = true) => { const p = pending.get(i); pending.delete(i); if (ok) p.resolve({frame: i}); else p.reject(new Error("404")); };
  return {calls, pending, load, finish};
}

test("the cache loads each wanted frame once, a few at a time, and serves requests", async () => {
  const l = loader();
  const cache = new FrameCache({load: l.load, capacity: 10, parallel: 2});
  cache.want([0, 1, 2, 3]);
  await tick();
  assert.deepEqual(l.calls, [0, 1]); // two at a time
  const got = cache.request(3); // asked for: jumps the queue
  l.finish(0);
  await tick(); await tick();
  assert.deepEqual(l.calls, [0, 1, 3]);
  l.finish(3);
  assert.deepEqual(await got, {frame: 3});
  cache.want([0, 1, 2, 3]); // again: nothing new is loaded twice
  await tick();
  assert.deepEqual(l.calls, [0, 1, 3, 2]);
  assert.deepEqual(cache.get(0), {frame: 0});
  assert.equal(cache.get(2), null); // still loading
  l.finish(2, false); // a frame that cannot be loaded resolves to null and is not asked again
  assert.equal(await cache.request(2), null);
  cache.want([2]);
  await tick();
  assert.equal(l.calls.filter((i) => i === 2).length, 1);
});

test("the cache keeps at most `capacity` frames, evicting the least recently used, never the pinned window", async () => {
  const cache = new FrameCache({load: async (i) => ({frame: i}), capacity: 3, parallel: 8});
  for (const i of [0, 1, 2]) cache.put(i, {frame: i});
  cache.get(0); // 1 is now the oldest
  cache.want([5, 6]);
  for (let k = 0; k < 6; k++) await tick();
  assert.deepEqual([...cache.frames.keys()].sort(), [0, 5, 6]);
  cache.want([7, 8, 9, 10]); // a window larger than the capacity stays whole while it is wanted
  for (let k = 0; k < 6; k++) await tick();
  assert.deepEqual([...cache.frames.keys()].sort((a, b) => a - b), [7, 8, 9, 10]);
});

test("a video task opens on its masklet's first frame (verify) or frame 0; image tasks are unchanged", () => {
  const video = {id: 4, width: 160, height: 120, frame_count: 24};
  const base = {media: "video", video, frame_url: "/api/v1/video/{video_id}/frames/{index}", target_mask_id: 9,
    masklets: [{id: 8, first_frame: 2, last_frame: 5}, {id: 9, first_frame: 7, last_frame: 20}]};
  assert.equal(startFrame({...base, kind: "verify_mask"}), 7);
  assert.equal(startFrame({...base, kind: "correct"}), 0);
  assert.equal(startFrame({...base, kind: "verify_mask", target_mask_id: 99}), 0);
  assert.deepEqual(taskPicture({...base, kind: "verify_mask"}),
    {url: "/api/v1/video/4/frames/7", width: 160, height: 120, frame: 7});
  const image = {kind: "correct", media: "image", image: {url: "/api/v1/images/3", width: 320, height: 240}};
  assert.equal(isVideo(image), false);
  assert.deepEqual(taskPicture(image), {url: "/api/v1/images/3", width: 320, height: 240, frame: null});
  assert.equal(isVideo({kind: "correct", image: image.image}), false); // a payload without media is an image
});
