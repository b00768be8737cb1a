// web/static/queue/state.js: the queue's state machine and its decisions, without DOM or requests.
import assert from "node:assert/strict";
import {test} from "node:test";

import {ApiError} from "../../web/static/queue/api.js";
import {
  QueueState, RETRY_MAX_MS, emptyReason, initialKinds, retryDelayMs, verdictStep,
} from "../../web/static/queue/state.js";

const entry = (id, kind = "verify_mask") => ({task: {id, kind}});
const failure = (status, code = null, message = `HTTP ${status}`) => new ApiError(message, {status, code});

test("verdictStep decides from the HTTP status, never from the message text", () => {
  assert.equal(verdictStep(failure(401, "unauthorized", "anything at all")), "signed_out");
  assert.equal(verdictStep(failure(401, null, "not signed in")), "signed_out");
  assert.equal(verdictStep(failure(0)), "retry"); // the server was not reached
  assert.equal(verdictStep(failure(500)), "retry");
  assert.equal(verdictStep(failure(503)), "retry");
  assert.equal(verdictStep(failure(429)), "retry");
  assert.equal(verdictStep(failure(409, "decision_conflict")), "conflict");
  assert.equal(verdictStep(failure(409, "lease_lost")), "failed");
  assert.equal(verdictStep(failure(422)), "refused");
  assert.equal(verdictStep(failure(403)), "failed");
  assert.equal(verdictStep(failure(404)), "failed");
  // a message saying "not signed in" on another status is not a sign-out
  assert.equal(verdictStep(failure(503, null, "not signed in")), "retry");
});

test("retries back off from 0.5 s, doubling, to at most 15 s", () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 20].map(retryDelayMs), [500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]);
  assert.equal(RETRY_MAX_MS, 15000);
});

test("emptyReason: what an empty page says and whether it asks again", () => {
  assert.equal(emptyReason(null), "empty");
  for (const status of [400, 403, 404, 422]) assert.equal(emptyReason(failure(status)), "refused");
  assert.equal(emptyReason(failure(409, "too_many_leases")), "too_many_leases");
  assert.equal(emptyReason(failure(0)), "unreachable");
  assert.equal(emptyReason(failure(502)), "unreachable");
});

test("initialKinds keeps the saved choice among the allowed kinds, else all of them", () => {
  const allowed = ["verify_mask", "check_exhaustivity", "correct"];
  assert.deepEqual(initialKinds(allowed, null), allowed);
  assert.deepEqual(initialKinds(allowed, ["correct", "gone"]), ["correct"]);
  assert.deepEqual(initialKinds(allowed, ["gone"]), allowed);
  assert.deepEqual(initialKinds(allowed, "not a list"), allowed);
});

test("the backlog of refused verdicts comes before the prefetched task", () => {
  const q = new QueueState();
  assert.equal(q.hasNext(), false);
  assert.equal(q.takeNext(), null);
  const a = entry(1), b = entry(2);
  assert.equal(q.leased(a), "keep");
  assert.equal(q.prefetched, a);
  q.backlog.push(b);
  assert.equal(q.takeNext(), b);
  assert.equal(q.takeNext(), a);
  assert.equal(q.prefetched, null);
});

test("a lease of a kind no longer asked for, or after the page stopped, is released", () => {
  const q = new QueueState();
  q.setAllowed(["verify_mask", "correct"], ["correct"]);
  assert.equal(q.leased(entry(1, "verify_mask")), "release");
  assert.equal(q.prefetched, null);
  assert.equal(q.leased(entry(2, "correct")), "keep");
  q.stop();
  assert.equal(q.leased(entry(3, "correct")), "release");
});

test("a verdict is counted when queued, retried while the server cannot answer, then stored", () => {
  const q = new QueueState();
  const e = entry(5);
  e.error = "old";
  const item = q.queueVerdict(e, {client_id: "c1", label: "accept"});
  assert.equal(e.error, null);
  assert.deepEqual(q.pending(), {count: 1, retrying: false});
  assert.equal(q.done, 1);
  assert.equal(q.sendFailed(item, failure(503)), "retry");
  assert.equal(q.sendFailed(item, failure(0)), "retry");
  assert.equal(item.attempts, 2);
  assert.deepEqual(q.pending(), {count: 1, retrying: true});
  q.stored(item);
  assert.deepEqual(q.pending(), {count: 0, retrying: false});
  assert.equal(q.done, 1);
});

test("a refused verdict takes its task back into the backlog with the reason; a lost one is uncounted", () => {
  const q = new QueueState();
  const refused = q.queueVerdict(entry(1), {});
  const lost = q.queueVerdict(entry(2), {});
  assert.equal(q.sendFailed(refused, failure(422, null, "label: not a label")), "refused");
  assert.deepEqual(q.backlog, [refused.entry]);
  assert.equal(refused.entry.error, "label: not a label");
  assert.equal(q.sendFailed(lost, failure(409, "lease_lost")), "failed");
  assert.equal(q.done, 0);
  assert.equal(q.pending().count, 0);
});

test("a decision conflict is stored (counted, no longer pending); a 401 leaves the verdict pending", () => {
  const q = new QueueState();
  const conflict = q.queueVerdict(entry(1), {});
  const unsent = q.queueVerdict(entry(2), {});
  assert.equal(q.sendFailed(conflict, failure(409, "decision_conflict")), "conflict");
  assert.equal(q.sendFailed(unsent, failure(401)), "signed_out");
  assert.equal(q.done, 2);
  assert.equal(q.pending().count, 1);
  assert.equal(unsent.attempts, 0);
});

test("a lost lease is dropped where it was held", () => {
  const q = new QueueState();
  const shown = entry(1), reserve = entry(2), refused = entry(3), skipped = entry(4);
  q.current = shown;
  q.prefetched = reserve;
  q.backlog.push(refused);
  q.parked.add(skipped);
  assert.deepEqual(q.held(), [shown, reserve, refused, skipped]);
  assert.equal(q.lost(reserve), "prefetched");
  assert.equal(q.prefetched, null);
  assert.equal(q.lost(refused), "held");
  assert.equal(q.lost(skipped), "held");
  assert.equal(q.lost(shown), "current"); // the controller moves on
  assert.deepEqual(q.held(), [shown]);
});

test("choosing kinds gives back a reserve of another kind and keeps the allowed order", () => {
  const q = new QueueState();
  q.setAllowed(["verify_mask", "check_exhaustivity", "correct"], null);
  const reserve = entry(9, "correct");
  q.leased(reserve);
  assert.equal(q.chooseKinds(["correct", "verify_mask", "unknown"]), null);
  assert.deepEqual(q.kinds, ["verify_mask", "correct"]);
  assert.equal(q.chooseKinds(["verify_mask"]), reserve);
  assert.equal(q.prefetched, null);
});

test("stop hands back every held lease and leases nothing more", () => {
  const q = new QueueState();
  const shown = entry(1), reserve = entry(2), skipped = entry(3);
  q.current = shown;
  q.prefetched = reserve;
  q.parked.add(skipped);
  assert.deepEqual(q.stop(), [shown, reserve, skipped]);
  assert.equal(q.stopped, true);
  assert.equal(q.prefetched, null);
  assert.equal(q.parked.size, 0);
});
