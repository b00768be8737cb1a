// Exemplar prompts in the correction editor. The annotator drags a box around a good instance (or,
// with Shift, a negative box around a wrong detection); the page POSTs the round's boxes to
// /tasks/{task}/exemplars, follows the request by polling GET /exemplars/{id} (as video/track.js
// follows a click) and adds the masks that come back to the correction as candidates the annotator
// keeps or deletes as usual. The model runs on a worker, never in the web process.
//
//   normaliseBox()    two drag corners → [x0, y0, x1, y1] inside the image, or null when too small
//   ExemplarRound     the boxes of one round (a new positive box starts a round after the last result;
//                     a negative box refines the last round)
//   ExemplarSession   one request: state (queued → running → done | failed), its masks, the error
//   startExemplar()   POST the boxes → a session;  follow()  polls until it ends or goes stale
//   ExemplarTool      the viewer tool (drag, draw the boxes) that correct.js plugs in (key X)

import {MaskItem} from "./layers.js";

export const STATES = ["queued", "running", "done", "failed"];
export const MAX_BOXES = 8; // the server's ExemplarSettings.max_boxes
export const MIN_SIDE = 2; // image pixels: a shorter drag is a click, not a box
export const POLL_MS = 250;
export const IDLE_MAX_MS = 1000;

/** The box two drag corners span, clipped to the w×h image and rounded to tenths of a pixel;
 * null when a side is shorter than ``minSide`` (a click, or a box outside the image). */
export function normaliseBox(a, b, w, h, minSide = MIN_SIDE) {
  const clip = (v, hi) => Math.round(Math.min(hi, Math.max(0, v)) * 10) / 10;
  const x0 = clip(Math.min(a.x, b.x), w), x1 = clip(Math.max(a.x, b.x), w);
  const y0 = clip(Math.min(a.y, b.y), h), y1 = clip(Math.max(a.y, b.y), h);
  if (x1 - x0 < minSide || y1 - y0 < minSide) return null;
  return [x0, y0, x1, y1];
}

/** The boxes (and labels, 1 good instance / 0 wrong detection) of one exemplar round. */
export class ExemplarRound {
  constructor(max = MAX_BOXES) {
    this.max = max;
    this.boxes = [];
    this.labels = [];
  }

  get size() { return this.boxes.length; }

  /** Add a box; false (nothing added) when the round is full. */
  add(box, label) {
    if (this.boxes.length >= this.max) return false;
    this.boxes.push(box);
    this.labels.push(label ? 1 : 0);
    return true;
  }

  /** Remove the last box (undo). */
  pop() { this.boxes.pop(); this.labels.pop(); }

  /** The round has a good instance to prompt with (negatives alone find nothing). */
  get ready() { return this.labels.includes(1); }

  /** The request's body. */
  body() { return {boxes: this.boxes.map((b) => b.slice()), labels: this.labels.slice()}; }
}

export class ExemplarSession {
  /** answer: the POST's {request_id, state}; boxes, labels: what was sent. */
  constructor(answer, {boxes = [], labels = []} = {}) {
    this.id = answer.request_id;
    this.state = STATES.includes(answer.state) ? answer.state : "queued";
    this.boxes = boxes;
    this.labels = labels;
    this.masks = [];
    this.error = null;
    this.polls = 0; // answers seen while the request had not ended
  }

  get finished() { return this.state === "done" || this.state === "failed"; }

  /** Merge one answer of GET /exemplars/{id}; a late answer cannot reopen an ended request.
   * Returns true when the state changed. */
  apply(answer) {
    if (this.finished) return false;
    const before = this.state;
    if (STATES.includes(answer.state)) this.state = answer.state;
    if (answer.error) this.error = String(answer.error);
    if (this.state === "done") {
      this.masks = (Array.isArray(answer.masks) ? answer.masks : []).filter((m) => m && m.rle);
    } else {
      this.polls++;
    }
    return this.state !== before;
  }

  /** The wait before the next poll (growing to IDLE_MAX_MS); null once the request has ended. */
  nextDelay() {
    if (this.finished) return null;
    return Math.min(IDLE_MAX_MS, POLL_MS * 2 ** Math.min(this.polls, 4));
  }

  /** What the page tells: "queued…", "finding instances…", "done: 3 masks", "failed: why". */
  describe() {
    if (this.state === "failed") return `failed: ${this.error || "the model failed"}`;
    if (this.state === "done") return `done: ${this.masks.length} mask${this.masks.length === 1 ? "" : "s"}`;
    return this.state === "queued" ? "queued…" : "finding instances…";
  }
}

/** POST the boxes of a round; → an ExemplarSession. */
export async function startExemplar(api, taskId, round) {
  const body = round.body();
  const answer = await api("POST", `/tasks/${taskId}/exemplars`, body);
  return new ExemplarSession(answer, body);
}

/**
 * Poll the request until it ends; ``onUpdate(session)`` hears of every change of state. Stops early
 * (returns false) once ``stale()`` is true (a newer round replaced it, or the task left the page).
 * A failed poll is retried ``retries`` times in a row at most, then the session fails with its error;
 * a 404 fails it at once.
 */
export async function follow(session, {api, sleep, onUpdate = () => {}, stale = () => false, retries = 5}) {
  let failures = 0;
  while (!session.finished) {
    if (stale()) return false;
    let answer;
    try {
      answer = await api("GET", `/exemplars/${session.id}`);
      failures = 0;
    } catch (err) {
      if (err?.status === 404 || ++failures > retries) {
        session.state = "failed";
        session.error = err?.message || String(err);
        onUpdate(session);
        return true;
      }
      await sleep(IDLE_MAX_MS);
      continue;
    }
    if (stale()) return false;
    if (session.apply(answer)) onUpdate(session);
    const delay = session.nextDelay();
    if (delay !== null) await sleep(delay);
  }
  return true;
}

/** A mask of an answer as a candidate of the correction: sent back as {rle, tool "exemplar", exemplar_id}. */
export function candidate(mask, exemplarId, {h, w, color}) {
  const item = new MaskItem({rle: mask.rle, box: mask.bbox, h, w, tool: "exemplar", score: mask.score ?? null,
    edited: true, color});
  item.exemplarId = exemplarId;
  return item;
}

/**
 * The exemplar tool of the correction editor (key X). ``mode`` is the CorrectMode: its viewer, page
 * (api, notify, lost), task, h, w, nextColor(), pushUndo() and the hooks ``addCandidates(items)``,
 * ``removeItems(items)``. Sets <body data-exemplar> to the request's state.
 */
export class ExemplarTool {
  constructor(mode, {sleep = (ms) => new Promise((r) => setTimeout(r, ms))} = {}) {
    this.mode = mode;
    this.sleep = sleep;
    this.round = new ExemplarRound();
    this.drag = null; // {a, b, label}
    this.seq = 0; // the latest request; an older one is stale
    this.session = null;
    this.items = []; // the candidates the latest answer added
  }

  down(p, e) {
    if (!this.mode.viewer.inImage(p)) return;
    this.drag = {a: p, b: p, label: e.shiftKey || e.button === 2 ? 0 : 1};
  }

  move(p) {
    if (!this.drag) return false;
    this.drag.b = p;
    return true;
  }

  up(p) {
    const drag = this.drag;
    this.drag = null;
    if (!drag) return;
    const box = normaliseBox(drag.a, p || drag.b, this.mode.w, this.mode.h);
    this.mode.viewer.redraw();
    if (!box) { this.mode.page.notify("Drag a box around an instance.", "warn"); return; }
    if (!this.round.add(box, drag.label)) {
      this.mode.page.notify(`At most ${this.round.max} boxes: press Esc to start again.`, "warn");
      return;
    }
    this.mode.pushUndo(() => { this.round.pop(); this.mode.viewer.redraw(); });
    if (this.round.ready) this.send();
    else this.mode.page.notify("Now drag a box around a good instance (without Shift).", "warn");
  }

  /** Esc: start a new round (the candidates stay). True when there was a round to drop. */
  reset() {
    const had = this.round.size > 0 || this.drag !== null;
    this.seq++;
    this.round = new ExemplarRound();
    this.drag = null;
    this.items = [];
    this.session = null;
    delete document.body.dataset.exemplar;
    this.mode.viewer.redraw();
    return had;
  }

  async send() {
    const seq = ++this.seq;
    const stale = () => seq !== this.seq || !this.mode.mounted;
    const status = (text) => { if (!stale()) document.body.dataset.exemplar = text; };
    status("queued");
    try {
      const session = await startExemplar(this.mode.page.api, this.mode.task.id, this.round);
      if (stale()) return;
      this.session = session;
      status(session.state);
      const ended = await follow(session, {api: this.mode.page.api, sleep: this.sleep, stale,
        onUpdate: (s) => { status(s.state); this.mode.refresh(false); }});
      if (ended && !stale()) this.finish(session);
    } catch (err) {
      if (stale()) return;
      status("failed");
      if (err.status === 409) { this.mode.page.lost(this.mode.entry); return; }
      this.mode.page.notify(`Exemplar request failed: ${err.message}`, "error");
    }
  }

  /** The request ended: its masks replace the previous answer's candidates of this round. */
  finish(session) {
    if (session.state === "failed") {
      this.mode.page.notify(`Exemplar request ${session.describe()}`, "error");
      return;
    }
    this.mode.removeItems(this.items);
    this.items = session.masks.map((m) => candidate(m, session.id, {h: this.mode.h, w: this.mode.w, color: this.mode.nextColor()}));
    this.mode.addCandidates(this.items);
    this.mode.page.notify(`Exemplars: ${session.describe()}. Keep or delete them as usual.`);
  }

  /** What the info line says. */
  describe() {
    if (this.session && this.round.size) return `Exemplars (${this.round.size} box${this.round.size === 1 ? "" : "es"}): ${this.session.describe()}`;
    return "Drag a box around a good instance; Shift+drag around a wrong one.";
  }

  draw(ctx, v) {
    const boxes = this.round.boxes.map((b, i) => [b, this.round.labels[i]]);
    if (this.drag) {
      const {a, b} = this.drag;
      boxes.push([[Math.min(a.x, b.x), Math.min(a.y, b.y), Math.max(a.x, b.x), Math.max(a.y, b.y)], this.drag.label]);
    }
    for (const [[x0, y0, x1, y1], label] of boxes) {
      const s = v.toScreen(x0, y0), t = v.toScreen(x1, y1);
      ctx.setLineDash(label ? [] : [6, 4]);
      ctx.lineWidth = 3; ctx.strokeStyle = "rgba(0,0,0,.7)"; ctx.strokeRect(s.x, s.y, t.x - s.x, t.y - s.y);
      ctx.lineWidth = 1.5; ctx.strokeStyle = label ? "#2fbf71" : "#f05252"; ctx.strokeRect(s.x, s.y, t.x - s.x, t.y - s.y);
    }
    ctx.setLineDash([]);
  }
}
