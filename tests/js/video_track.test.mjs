// web/static/queue/video/track.js: a tracker request from a click, followed by polling: frames merged
// once each in sequence order, the state machine queued → running → done | failed, the wait between
// polls, a stale request dropped, a failing poll retried then given up.
import assert from "node:assert/strict";
import {test} from "node:test";

import {IDLE_MAX_MS, POLL_MS, TrackSession, follow, startTrack} from "../../web/static/queue/video/track.js";

const RLE = {size: [2, 2], counts: "04"};
const frame = (seq, i, present = true) => ({seq, frame_index: i, rle: present ? RLE : null,
  bbox: present ? [0, 0, 2, 2] : null, score: present ? 0.8 : null});

test("a click posts the frame, the points and the masklet being fixed", async () => {
  const sent = [];
  const api = async (method, path, body) => { sent.push([method, path, body]); return {request_id: 5, state: "queued", window: [0, 15]}; };
  const s = await startTrack(api, 31, {frameIndex: 6, points: [[10, 12, 1], [40, 4, 0]], maskId: 77});
  assert.deepEqual(sent, [["POST", "/video/tasks/31/track", {frame_index: 6, points: [[10, 12, 1], [40, 4, 0]], mask_id: 77}]]);
  assert.equal(s.id, 5);
  assert.equal(s.state, "queued");
  assert.deepEqual(s.window, [0, 15]);
  await startTrack(api, 31, {frameIndex: 0, points: [[1, 1, 1]]});
  assert.equal("mask_id" in sent[1][2], false); // a new object: no masklet id
});

test("answers merge once each: the clicked frame first, absent frames kept as such", () => {
  const s = new TrackSession({request_id: 1, state: "queued", window: [0, 9]}, {frameIndex: 4});
  assert.equal(s.describe(), "queued…");
  assert.deepEqual(s.apply({state: "running", frames: [frame(1, 4)]}), [4]);
  assert.ok(s.first);
  assert.equal(s.after, 1);
  assert.deepEqual(s.apply({state: "running", frames: [frame(1, 4), frame(2, 5), frame(3, 6, false)]}), [5, 6]);
  assert.deepEqual(s.present(), [4, 5]);
  assert.equal(s.frames.get(6), null);
  assert.equal(s.describe(), "tracking… 2 frames");
  assert.deepEqual(s.apply({state: "done", frames: [frame(4, 3)]}), [3]);
  assert.ok(s.finished);
  assert.equal(s.describe(), "done: 3 frames");
  assert.equal(s.nextDelay(), null);
  s.apply({state: "running", frames: []}); // a late answer cannot reopen it
  assert.equal(s.state, "done");
  const f = new TrackSession({request_id: 2, state: "running"}, {frameIndex: 0});
  f.apply({state: "failed", error: "the tracker ran out of memory", frames: []});
  assert.equal(f.describe(), "failed: the tracker ran out of memory");
});

test("polls come quickly while frames arrive and slow down to a ceiling while none do", () => {
  const s = new TrackSession({request_id: 1, state: "running"}, {frameIndex: 0});
  assert.equal(s.nextDelay(), POLL_MS);
  const waits = [];
  for (let k = 0; k < 6; k++) { s.apply({state: "running", frames: []}); waits.push(s.nextDelay()); }
  assert.deepEqual(waits, [2 * POLL_MS, 4 * POLL_MS, IDLE_MAX_MS, IDLE_MAX_MS, IDLE_MAX_MS, IDLE_MAX_MS]);
  s.apply({state: "running", frames: [frame(1, 0)]});
  assert.equal(s.nextDelay(), POLL_MS);
});

function scripted(answers) {
  const asked = [];
  const api = async (method, path) => {
    asked.push(path);
    const next = answers.shift();
    if (next instanceof Error) throw next;
    return next;
  };
  return {asked, api};
}

test("follow polls with ?after= until the request is done and reports each frame", async () => {
  const {asked, api} = scripted([
    {state: "queued", frames: []},
    {state: "running", frames: [frame(1, 4)]},
    {state: "running", frames: [frame(2, 5), frame(3, 3)]},
    {state: "done", frames: []},
  ]);
  const s = new TrackSession({request_id: 9, state: "queued"}, {frameIndex: 4});
  const heard = [], slept = [];
  const ended = await follow(s, {api, sleep: async (ms) => { slept.push(ms); }, onFrames: (_, added) => heard.push(added)});
  assert.equal(ended, true);
  assert.deepEqual(asked, ["/video/track/9?after=0", "/video/track/9?after=0", "/video/track/9?after=1",
    "/video/track/9?after=3"]);
  assert.deepEqual(heard, [[4], [5, 3], []]); // the end is heard too
  assert.deepEqual(s.present(), [3, 4, 5]);
  assert.equal(slept.length, 3);
});

test("follow stops when the request is stale, and gives up after repeated failures", async () => {
  const {asked, api} = scripted([{state: "running", frames: [frame(1, 0)]}, {state: "running", frames: []}]);
  const s = new TrackSession({request_id: 3, state: "queued"}, {frameIndex: 0});
  let polls = 0;
  const ended = await follow(s, {api, sleep: async () => {}, stale: () => polls++ >= 2});
  assert.equal(ended, false);
  assert.equal(asked.length, 1);

  const down = Object.assign(new Error("the server cannot be reached"), {status: 0});
  const failing = scripted([down, down, down, down]);
  const f = new TrackSession({request_id: 4, state: "queued"}, {frameIndex: 0});
  assert.equal(await follow(f, {api: failing.api, sleep: async () => {}, retries: 2}), true);
  assert.equal(failing.asked.length, 3);
  assert.equal(f.state, "failed");
  assert.match(f.error, /cannot be reached/);

  const gone = scripted([Object.assign(new Error("no such request"), {status: 404})]);
  const g = new TrackSession({request_id: 5, state: "queued"}, {frameIndex: 0});
  await follow(g, {api: gone.api, sleep: async () => {}});
  assert.equal(g.state, "failed");
  assert.equal(gone.asked.length, 1); // a 404 is not retried
});
