// Frame spans, pure: where a frame or a masklet's frames sit on the timeline (percent of its width),
// which frame a point of the timeline means, runs of frames that have a mask (a tracker request's
// frames arriving out of order), and cutting an object to a frame range ([ and ] on the page).
//
// A span is [first, last], both sampled frame indices, inclusive. A cut is a span inside an object's
// extent, or null for "all of it".

/** The timeline's left edge of frame ``index`` in a video of ``n`` frames, in percent. */
export function framePct(index, n) {
  return n > 0 ? (100 * index) / n : 0;
}

/** {left, width} in percent for the frames first … last (inclusive). */
export function spanBox([first, last], n) {
  if (!(n > 0) || last < first) return {left: 0, width: 0};
  return {left: framePct(first, n), width: (100 * (last - first + 1)) / n};
}

/** The frame under ``x`` pixels of a timeline ``width`` pixels wide. */
export function frameAt(x, width, n) {
  if (!(n > 0) || !(width > 0)) return 0;
  return Math.min(n - 1, Math.max(0, Math.floor((x / width) * n)));
}

/** Sorted frame indices → their runs of consecutive frames: [[first, last], …]. */
export function runs(indices) {
  const sorted = [...new Set(indices)].sort((a, b) => a - b);
  const out = [];
  for (const i of sorted) {
    const last = out[out.length - 1];
    if (last && i === last[1] + 1) last[1] = i; else out.push([i, i]);
  }
  return out;
}

/** The extent of a set of frame indices: [min, max], or null when there is none. */
export function extentOf(indices) {
  let lo = Infinity, hi = -Infinity;
  for (const i of indices) { lo = Math.min(lo, i); hi = Math.max(hi, i); }
  return lo <= hi ? [lo, hi] : null;
}

const clampTo = (f, [a, b]) => Math.min(b, Math.max(a, f));

/** A cut equal to the whole extent is no cut (null). */
function normal(cut, extent) {
  return cut[0] === extent[0] && cut[1] === extent[1] ? null : cut;
}

/** "[" at ``frame``: the object starts there (inside its extent); an end before it moves with it. */
export function cutIn(cut, extent, frame) {
  const a = clampTo(frame, extent);
  const b = Math.max(a, cut ? cut[1] : extent[1]);
  return normal([a, b], extent);
}

/** "]" at ``frame``: the object ends there (inside its extent); a start after it moves with it. */
export function cutOut(cut, extent, frame) {
  const b = clampTo(frame, extent);
  const a = Math.min(b, cut ? cut[0] : extent[0]);
  return normal([a, b], extent);
}

/** The frames an object keeps: its cut, else its extent. */
export function kept(cut, extent) {
  return cut || extent;
}

/** Frame ``frame`` is kept by the object (inside its cut, or its extent when uncut). */
export function keeps(cut, extent, frame) {
  const [a, b] = kept(cut, extent) || [0, -1];
  return frame >= a && frame <= b;
}

/** The page ranges [start, end] (inclusive) to ask for the frames first … last, ``size`` at a time. */
export function pages(first, last, size = 500) {
  const out = [];
  for (let a = first; a <= last; a += size) out.push([a, Math.min(last, a + size - 1)]);
  return out;
}

/** "frame 12 / 48 · 2.0 s" (index 0-based; shown 1-based). */
export function frameLabel(index, n, fps) {
  const time = fps > 0 ? ` · ${(index / fps).toFixed(1)} s` : "";
  return `frame ${index + 1} / ${n}${time}`;
}
