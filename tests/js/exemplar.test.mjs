// web/static/queue/exemplar.js: drag corners → a box inside the image, the round of boxes and labels,
// the request posted, and the polling state machine queued → running → done | failed.
import assert from "node:assert/strict";
import {test} from "node:test";

import {ExemplarRound, ExemplarSession, IDLE_MAX_MS, MAX_BOXES, POLL_MS, follow, normaliseBox, startExemplar}
  from "../../web/static/queue/exemplar.js";

const MASK = {rle: {size: [4, 4], counts: "0G"}, bbox: [0, 0, 4, 4], score: 0.7};

test("drag corners give the box inside the image whichever way the drag went; a click gives none", () => {
  assert.deepEqual(normaliseBox({x: 30, y: 40}, {x: 10.04, y: 12.26}, 100, 50), [10, 12.3, 30, 40]);
  assert.deepEqual(normaliseBox({x: -5, y: -5}, {x: 120, y: 80}, 100, 50), [0, 0, 100, 50]);
  assert.equal(normaliseBox({x: 10, y: 10}, {x: 11, y: 30}, 100, 50), null); // too narrow
  assert.equal(normaliseBox({x: 10, y: 10}, {x: 10, y: 10}, 100, 50), null); // a click
  assert.equal(normaliseBox({x: 120, y: 10}, {x: 150, y: 30}, 100, 50), null); // outside the image
});

test("a round holds at most MAX_BOXES boxes; negatives alone are not ready; the body is a copy", () => {
  const r = new ExemplarRound();
  assert.ok(r.add([0, 0, 5, 5], 0));
  assert.equal(r.ready, false);
  assert.ok(r.add([1, 1, 9, 9], true));
  assert.ok(r.ready);
  const body = r.body();
  assert.deepEqual(body, {boxes: [[0, 0, 5, 5], [1, 1, 9, 9]], labels: [0, 1]});
  body.boxes[0][0] = 99;
  assert.equal(r.boxes[0][0], 0);
  r.pop();
  assert.deepEqual(r.labels, [0]);
  for (let i = r.size; i < MAX_BOXES; i++) assert.ok(r.add([0, 0, 3, 3], 1));
  assert.equal(r.add([0, 0, 3, 3], 1), false);
  assert.equal(r.size, MAX_BOXES);
});

test("the boxes are posted to the task's exemplars; the answer starts a session", async () => {
  const sent = [];
  const api = async (method, path, body) => { sent.push([method, path, body]); return {request_id: 9, state: "queued"}; };
  const r = new ExemplarRound();
  r.add([2, 3, 20, 30], 1); r.add([40, 4, 60, 24], 0);
  const s = await startExemplar(api, 17, r);
  assert.deepEqual(sent, [["POST", "/tasks/17/exemplars", {boxes: [[2, 3, 20, 30], [40, 4, 60, 24]], labels: [1, 0]}]]);
  assert.equal(s.id, 9);
  assert.equal(s.state, "queued");
  assert.equal(s.describe(), "queued…");
});

test("the state machine: masks only once done, an ended request stays ended, polls slow to a ceiling", () => {
  const s = new ExemplarSession({request_id: 1, state: "queued"});
  assert.equal(s.nextDelay(), POLL_MS);
  assert.equal(s.apply({state: "running", masks: []}), true);
  assert.equal(s.describe(), "finding instances…");
  const waits = [];
  for (let k = 0; k < 5; k++) { assert.equal(s.apply({state: "running"}), false); waits.push(s.nextDelay()); }
  assert.deepEqual(waits, [4 * POLL_MS, IDLE_MAX_MS, IDLE_MAX_MS, IDLE_MAX_MS, IDLE_MAX_MS]);
  assert.ok(s.apply({state: "done", masks: [MASK, {rle: null}, MASK]}));
  assert.equal(s.masks.length, 2); // a mask without an rle is left out
  assert.equal(s.describe(), "done: 2 masks");
  assert.equal(s.nextDelay(), null);
  assert.equal(s.apply({state: "running", masks: []}), false);
  assert.equal(s.state, "done");
  const f = new ExemplarSession({request_id: 2, state: "running"});
  f.apply({state: "failed", error: "out of memory", masks: []});
  assert.equal(f.describe(), "failed: out of memory");
  assert.equal(new ExemplarSession({request_id: 3, state: "nonsense"}).state, "queued");
});

function scripted(answers) {
  const asked = [];
  const api = async (method, path) => {
    asked.push([method, path]);
    const next = answers.shift();
    if (next instanceof Error) throw next;
    return next;
  };
  return {api, asked};
}

const failure = (status, message) => Object.assign(new Error(message), {status});

test("follow polls until done and tells every change of state", async () => {
  const {api, asked} = scripted([{state: "queued"}, {state: "running"}, {state: "running"}, {state: "done", masks: [MASK]}]);
  const s = new ExemplarSession({request_id: 4, state: "queued"});
  const told = [], slept = [];
  const ended = await follow(s, {api, sleep: async (ms) => { slept.push(ms); }, onUpdate: (x) => told.push(x.state)});
  assert.equal(ended, true);
  assert.deepEqual(told, ["running", "done"]);
  assert.equal(asked.length, 4);
  assert.deepEqual(asked[0], ["GET", "/exemplars/4"]);
  assert.equal(slept.length, 3); // none after the end
  assert.equal(s.masks.length, 1);
});

test("follow stops when stale, retries a failing poll, fails at once on 404", async () => {
  let n = 0;
  const stale = scripted([{state: "running"}, {state: "running"}]);
  const s = new ExemplarSession({request_id: 5, state: "queued"});
  assert.equal(await follow(s, {api: stale.api, sleep: async () => {}, stale: () => ++n > 2}), false);
  assert.equal(s.finished, false);

  const flaky = scripted([failure(0, "offline"), failure(503, "busy"), {state: "done", masks: []}]);
  const r = new ExemplarSession({request_id: 6, state: "running"});
  assert.equal(await follow(r, {api: flaky.api, sleep: async () => {}}), true);
  assert.equal(r.state, "done");

  const broken = scripted([failure(500, "a"), failure(500, "b"), failure(500, "c")]);
  const b = new ExemplarSession({request_id: 7, state: "running"});
  await follow(b, {api: broken.api, sleep: async () => {}, retries: 2});
  assert.equal(b.state, "failed");
  assert.equal(b.error, "c");

  const gone = scripted([failure(404, "no such request")]);
  const g = new ExemplarSession({request_id: 8, state: "running"});
  const told = [];
  await follow(g, {api: gone.api, sleep: async () => {}, onUpdate: (x) => told.push(x.describe())});
  assert.deepEqual(told, ["failed: no such request"]);
});
