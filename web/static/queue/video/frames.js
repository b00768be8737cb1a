// A video task's frames: where each sampled frame is (the task's frame_url template), which frames to
// load ahead of the one shown, and a bounded cache of loaded frames. Pure: the loader is given (the
// page passes one that makes Image objects), so the module runs in Node's test runner as well.
//
//   prefetch window   from the frame shown, `ahead` frames in the direction of play first (nearest
//                     first), then `behind` frames the other way: scrubbing back a little never waits.
//   cache             at most `capacity` frames (least recently used go first; the window asked for
//                     last is never evicted), at most `parallel` loads at once, each frame loaded once.

export const AHEAD = 16;
export const BEHIND = 4;
export const CAPACITY = 64;
export const PARALLEL = 4;

/** The frame index kept inside 0 … n-1 (0 for an empty video). */
export function clampFrame(index, n) {
  if (!(n > 0)) return 0;
  return Math.min(n - 1, Math.max(0, Math.round(Number(index) || 0)));
}

/** The URL of frame ``index`` from the task's template ("/api/v1/video/{video_id}/frames/{index}"). */
export function frameUrl(template, videoId, index) {
  return String(template).replaceAll("{video_id}", String(videoId)).replaceAll("{index}", String(index));
}

/** The frames to have loaded around ``current``, in the order to load them. */
export function prefetchIndices(current, n, {ahead = AHEAD, behind = BEHIND, direction = 1} = {}) {
  const dir = direction < 0 ? -1 : 1;
  const out = [];
  const add = (i) => { if (i >= 0 && i < n && !out.includes(i)) out.push(i); };
  add(current);
  for (let k = 1; k <= ahead; k++) add(current + dir * k);
  for (let k = 1; k <= behind; k++) add(current - dir * k);
  return out;
}

export class FrameCache {
  /** load(index) → Promise<frame>; capacity: frames kept; parallel: loads at once. */
  constructor({load, capacity = CAPACITY, parallel = PARALLEL}) {
    Object.assign(this, {load, capacity: Math.max(1, capacity), parallel: Math.max(1, parallel)});
    this.frames = new Map(); // index → frame, in order of use (the last is the most recent)
    this.loading = new Map(); // index → Promise<frame | null>
    this.failed = new Set();
    this.queue = []; // indices waiting for a free load slot
    this.pinned = new Set(); // the window asked for last: never evicted
    this.waiters = new Map(); // index → [resolve]
  }

  /** The frame if loaded (and marks it used), else null. */
  get(index) {
    const frame = this.frames.get(index);
    if (frame === undefined) return null;
    this.frames.delete(index);
    this.frames.set(index, frame);
    return frame;
  }

  has(index) { return this.frames.has(index); }

  /** Put a frame loaded elsewhere (the task's first frame, loaded with the lease). */
  put(index, frame) {
    this.frames.delete(index);
    this.frames.set(index, frame);
    this.evict();
  }

  /** Load these frames (in this order) if they are not there; they stay pinned until the next call. */
  want(indices) {
    this.pinned = new Set(indices);
    this.queue = indices.filter((i) => !this.frames.has(i) && !this.loading.has(i) && !this.failed.has(i));
    this.pump();
    this.evict();
  }

  /** The frame, loaded first if needed (null when it cannot be loaded). */
  request(index) {
    if (this.frames.has(index)) return Promise.resolve(this.get(index));
    if (this.failed.has(index)) return Promise.resolve(null);
    return new Promise((resolve) => {
      const list = this.waiters.get(index) || [];
      list.push(resolve);
      this.waiters.set(index, list);
      if (!this.loading.has(index)) {
        this.queue = [index, ...this.queue.filter((i) => i !== index)];
        this.pump();
      }
    });
  }

  pump() {
    while (this.loading.size < this.parallel && this.queue.length) {
      const index = this.queue.shift();
      if (this.frames.has(index) || this.loading.has(index)) continue;
      const done = Promise.resolve().then(() => this.load(index)).then((frame) => {
        this.frames.set(index, frame);
        return frame;
      }, () => {
        this.failed.add(index);
        return null;
      }).then((frame) => {
        this.loading.delete(index);
        for (const resolve of this.waiters.get(index) || []) resolve(frame);
        this.waiters.delete(index);
        this.evict();
        this.pump();
        return frame;
      });
      this.loading.set(index, done);
    }
  }

  /** Drop the least recently used frames beyond the capacity (never a pinned one). */
  evict() {
    for (const index of this.frames.keys()) {
      if (this.frames.size <= this.capacity) return;
      if (!this.pinned.has(index)) this.frames.delete(index);
    }
  }

  clear() {
    this.frames.clear();
    this.queue = [];
    this.pinned.clear();
  }
}
