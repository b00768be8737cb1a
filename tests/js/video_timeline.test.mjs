// web/static/queue/video/spans.js and objects.js: the timeline's arithmetic, runs of arrived frames,
// cutting an object to a frame range with [ and ], and the masks a video correction sends.
import assert from "node:assert/strict";
import {test} from "node:test";

import {describeFrames, extent, maskletItem, trackItem, verdictMasks} from "../../web/static/queue/video/objects.js";
import {cutIn, cutOut, extentOf, frameAt, frameLabel, framePct, keeps, pages, runs, spanBox}
  from "../../web/static/queue/video/spans.js";
import {TrackSession} from "../../web/static/queue/video/track.js";

test("frames and spans map onto the timeline's width and back", () => {
  assert.equal(framePct(0, 24), 0);
  assert.equal(framePct(12, 24), 50);
  assert.deepEqual(spanBox([0, 23], 24), {left: 0, width: 100});
  assert.deepEqual(spanBox([6, 11], 24), {left: 25, width: 25});
  assert.deepEqual(spanBox([5, 4], 24), {left: 0, width: 0}); // empty
  assert.equal(frameAt(0, 240, 24), 0);
  assert.equal(frameAt(239.9, 240, 24), 23);
  assert.equal(frameAt(125, 240, 24), 12);
  assert.equal(frameAt(-5, 240, 24), 0);
  assert.equal(frameAt(400, 240, 24), 23);
  for (let i = 0; i < 24; i++) { // the middle of frame i's cell is frame i
    const box = spanBox([i, i], 24);
    assert.equal(frameAt(((box.left + box.width / 2) / 100) * 240, 240, 24), i);
  }
  assert.equal(frameLabel(0, 24, 6), "frame 1 / 24 · 0.0 s");
  assert.equal(frameLabel(9, 24, 6), "frame 10 / 24 · 1.5 s");
});

test("arrived frames make runs, whatever their order", () => {
  assert.deepEqual(runs([]), []);
  assert.deepEqual(runs([5, 3, 4, 9, 10, 1, 4]), [[1, 1], [3, 5], [9, 10]]);
  assert.deepEqual(extentOf([5, 3, 9]), [3, 9]);
  assert.equal(extentOf([]), null);
  assert.deepEqual(pages(0, 1199), [[0, 499], [500, 999], [1000, 1199]]);
  assert.deepEqual(pages(7, 7), [[7, 7]]);
});

test("[ and ] cut an object to a range inside its extent; the whole extent is no cut", () => {
  const ext = [4, 20];
  assert.deepEqual(cutIn(null, ext, 8), [8, 20]);
  assert.deepEqual(cutOut([8, 20], ext, 15), [8, 15]);
  assert.deepEqual(cutIn([8, 15], ext, 17), [17, 17]); // a start after the end moves the end with it
  assert.deepEqual(cutOut([8, 15], ext, 6), [6, 6]); // an end before the start moves the start with it
  assert.deepEqual(cutIn(null, ext, 0), null); // before the extent: the start of the extent, i.e. no cut
  assert.deepEqual(cutOut([8, 15], ext, 99), [8, 20]);
  assert.equal(cutOut(cutIn(null, ext, 4), ext, 20), null);
  assert.ok(keeps([8, 15], ext, 8) && keeps([8, 15], ext, 15) && !keeps([8, 15], ext, 16) && !keeps([8, 15], ext, 7));
  assert.ok(keeps(null, ext, 4) && !keeps(null, ext, 3) && !keeps(null, null, 0));
});

function doneTrack(id, frames, state = "done") {
  const s = new TrackSession({request_id: id, state: "queued", window: [0, 23]}, {frameIndex: frames[0]});
  s.apply({state, frames: frames.map((f, k) => ({seq: k + 1, frame_index: f, rle: {size: [2, 2], counts: "04"},
    bbox: [0, 0, 2, 2], score: 0.9}))});
  return s;
}

test("a correction's masks: kept masklets (cut, crowd) and tracked objects; unlisted ones are deleted", () => {
  const red = [255, 0, 0];
  const a = maskletItem({id: 11, first_frame: 0, last_frame: 23, is_crowd: false}, red);
  const b = maskletItem({id: 12, first_frame: 3, last_frame: 9, is_crowd: true}, red);
  b.cut = cutOut(null, extent(b), 6);
  const t = trackItem(doneTrack(70, [10, 11, 12, 9, 8]), red);
  t.isCrowd = true;
  assert.deepEqual(extent(t), [8, 12]);
  t.cut = cutIn(null, extent(t), 9);
  assert.deepEqual(verdictMasks([a, b, t]), {masks: [
    {mask_id: 11, tool: "existing", is_crowd: false},
    {mask_id: 12, tool: "existing", is_crowd: true, frame_range: [3, 6]},
    {track_id: 70, tool: "tracker", is_crowd: true, frame_range: [9, 12]},
  ]});
  assert.equal(describeFrames(b), "frames 4–10, cut to 4–7");
  assert.equal(describeFrames(a), "frames 1–24");
});

test("a correction waits for running trackers, refuses failed ones and needs one object", () => {
  const red = [255, 0, 0];
  const running = trackItem(doneTrack(71, [5], "running"), red);
  assert.ok(verdictMasks([running]).wait);
  const failed = trackItem(doneTrack(72, [5], "failed"), red);
  assert.match(verdictMasks([failed]).error, /failed/);
  assert.match(verdictMasks([]).error, /no masklets/);
  const empty = trackItem(doneTrack(73, [5, 6]), red); // cut to frames where it has no mask: left out
  empty.cut = [5, 5];
  const s = empty.session;
  s.frames.set(5, null);
  assert.deepEqual(verdictMasks([empty, maskletItem({id: 1, first_frame: 0, last_frame: 1}, red)]).masks,
    [{mask_id: 1, tool: "existing", is_crowd: false}]);
});
