// Tracker requests from the page, pure (the API call and the wait are given): a click on a frame
// POSTs /video/tasks/{task}/track with every point of the object on that frame; the worker runs the
// video tracker on a window of frames around it and stores frames as they are propagated (the
// clicked frame first, then forward, then backward). The page follows the request by polling
// GET /video/track/{id}?after=SEQ and shows each frame as it arrives.
//
//   TrackSession   one request: state (queued → running → done | failed), its window, the frames so
//                  far (frame index → {rle, bbox, score}, or null where the object is absent) and the
//                  last sequence number seen (``after``). apply(answer) merges one answer.
//   follow()       polls until the request ends or the caller loses interest (stale()).

export const STATES = ["queued", "running", "done", "failed"];
export const POLL_MS = 250; // while frames arrive
export const IDLE_MAX_MS = 1000; // the longest wait between polls when nothing arrives
export const PAGE = 200; // the most frames one answer carries

export class TrackSession {
  /** answer: the POST's {request_id, state, window}; frameIndex: the clicked frame; points, maskId: what was sent. */
  constructor(answer, {frameIndex, points = [], maskId = null} = {}) {
    this.id = answer.request_id;
    this.state = STATES.includes(answer.state) ? answer.state : "queued";
    this.window = Array.isArray(answer.window) ? answer.window : [frameIndex, frameIndex];
    this.frameIndex = frameIndex;
    this.points = points;
    this.maskId = maskId;
    this.error = null;
    this.after = 0;
    this.frames = new Map();
    this.idle = 0; // polls in a row that brought nothing
  }

  get finished() { return this.state === "done" || this.state === "failed"; }

  /** Frames with a mask (not absent), in frame order. */
  present() {
    return [...this.frames.entries()].filter(([, f]) => f).map(([i]) => i).sort((a, b) => a - b);
  }

  /** The clicked frame has arrived (its mask, or its absence). */
  get first() { return this.frames.has(this.frameIndex); }

  /** Merge one answer of GET /video/track/{id}; returns the frame indices it added. */
  apply(answer) {
    const added = [];
    for (const f of Array.isArray(answer.frames) ? answer.frames : []) {
      if (!(f.seq > this.after)) continue; // seen already (a repeated or late answer)
      this.after = f.seq;
      this.frames.set(f.frame_index, f.rle ? {rle: f.rle, bbox: f.bbox, score: f.score} : null);
      added.push(f.frame_index);
    }
    if (Array.isArray(answer.window)) this.window = answer.window;
    if (STATES.includes(answer.state) && !this.finished) this.state = answer.state;
    if (answer.error) this.error = String(answer.error);
    this.idle = added.length ? 0 : this.idle + 1;
    return added;
  }

  /** The wait before the next poll: short while frames arrive, growing to IDLE_MAX_MS while none do;
   * null once the request has ended. */
  nextDelay() {
    if (this.finished) return null;
    return Math.min(IDLE_MAX_MS, POLL_MS * 2 ** Math.min(this.idle, 4));
  }

  /** What the page tells: "queued", "tracking 12 frames", "done: 40 frames", "failed: why". */
  describe() {
    const n = this.present().length;
    if (this.state === "failed") return `failed: ${this.error || "the tracker failed"}`;
    if (this.state === "done") return `done: ${n} frame${n === 1 ? "" : "s"}`;
    if (this.state === "queued" && !this.frames.size) return "queued…";
    return `tracking… ${n} frame${n === 1 ? "" : "s"}`;
  }
}

/** POST the click(s); → a TrackSession. */
export async function startTrack(api, taskId, {frameIndex, points, maskId = null}) {
  const body = {frame_index: frameIndex, points};
  if (maskId !== null && maskId !== undefined) body.mask_id = maskId;
  const answer = await api("POST", `/video/tasks/${taskId}/track`, body);
  return new TrackSession(answer, {frameIndex, points, maskId});
}

/**
 * Poll the request until it ends; ``onFrames(session, added)`` hears of every answer that brought
 * frames or changed the state. Stops early (returns false) once ``stale()`` is true: a newer click
 * replaced the request, or the task left the page. A failed poll is retried (``retries`` times in a
 * row at most), then the session fails with that error.
 */
export async function follow(session, {api, sleep, onFrames = () => {}, stale = () => false, retries = 5}) {
  let failures = 0;
  while (!session.finished) {
    if (stale()) return false;
    let answer;
    try {
      answer = await api("GET", `/video/track/${session.id}?after=${session.after}`);
      failures = 0;
    } catch (err) {
      if (err?.status === 404 || ++failures > retries) {
        session.state = "failed";
        session.error = err?.message || String(err);
        onFrames(session, []);
        return true;
      }
      await sleep(IDLE_MAX_MS);
      continue;
    }
    if (stale()) return false;
    const before = session.state;
    const added = session.apply(answer);
    if (added.length || session.state !== before) onFrames(session, added);
    const delay = session.nextDelay();
    if (delay !== null && added.length < PAGE) await sleep(delay); // a full page: more are waiting
  }
  return true;
}
