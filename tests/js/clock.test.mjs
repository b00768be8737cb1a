// web/static/queue/clock.js: active time counts while the page is visible and the user is active.
import assert from "node:assert/strict";
import {test} from "node:test";

import {ActiveClock} from "../../web/static/queue/clock.js";

test("time counts up to IDLE_MS after the last input, and not while hidden", () => {
  const clock = new ActiveClock(1000);
  clock.start(0, true);
  clock.input(500);
  clock.tick(5000); // active until 1500
  assert.equal(clock.total, 1500);
  clock.input(6000);
  clock.visibility(false, 6200); // +200
  clock.tick(6900); // hidden: nothing
  clock.visibility(true, 7000);
  assert.equal(clock.stop(7100), 1700); // idle since 7000 (the last input was at 6000)
  clock.start(8000, true);
  clock.tick(8400); // +400
  assert.equal(clock.stop(8400), 2100);
  clock.tick(8900); // stopped: nothing
  assert.equal(clock.total, 2100);
});

test("a restarted clock adds to its total (a task shown again)", () => {
  const clock = new ActiveClock(1000);
  clock.start(0, true);
  assert.equal(clock.stop(300), 300);
  clock.start(10_000, true);
  assert.equal(clock.stop(10_250.5), 551);
});
