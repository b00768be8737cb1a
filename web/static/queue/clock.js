// Active time on a task, pure (the caller passes the time and the page's visibility): milliseconds
// the page was visible and the user had done something within the last IDLE_MS.

export const IDLE_MS = 30_000;

export class ActiveClock {
  constructor(idleMs = IDLE_MS) {
    this.idleMs = idleMs;
    this.total = 0;
    this.running = false;
    this.last = 0;
    this.lastInput = 0;
    this.visible = true;
  }

  start(now, visible) {
    this.running = true;
    this.last = now;
    this.lastInput = now;
    this.visible = visible;
  }

  tick(now) {
    if (this.running && this.visible) {
      const until = Math.min(now, this.lastInput + this.idleMs);
      if (until > this.last) this.total += until - this.last;
    }
    this.last = now;
  }

  input(now) {
    this.tick(now);
    this.lastInput = now;
  }

  visibility(visible, now) {
    this.tick(now);
    this.visible = visible;
  }

  /** Stop counting; the active milliseconds so far (a restarted clock adds to them). */
  stop(now) {
    this.tick(now);
    this.running = false;
    return Math.ceil(this.total);
  }
}
