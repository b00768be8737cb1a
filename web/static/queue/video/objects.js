// The objects of a video correction, pure: the pair's masklets the annotator keeps (each maybe cut
// to a frame range, maybe marked crowd) and the objects added with tracker clicks (a finished tracker
// request each, track.js), and the ``masks`` of the verdict they make:
//   {mask_id, tool: "existing", is_crowd, frame_range?}   a kept masklet (frame_range: its cut)
//   {track_id, tool: "tracker", is_crowd, frame_range?}    a new masklet from a tracker request
// A masklet not listed is deleted.

import {extentOf, kept} from "./spans.js";

/** A kept masklet of the task ({id, first_frame, last_frame, is_crowd, …}). */
export function maskletItem(m, color) {
  return {key: `m${m.id}`, kind: "masklet", id: m.id, masklet: m, color, isCrowd: !!m.is_crowd, cut: null};
}

/** An object made by a tracker request (a TrackSession); ``replaces``: the object it fixes, if any. */
export function trackItem(session, color, {isCrowd = false} = {}) {
  return {key: `t${session.id}`, kind: "track", id: null, session, color, isCrowd, cut: null};
}

/** The frames an object covers: a masklet's first → last frame, a track's frames with a mask. */
export function extent(obj) {
  if (obj.kind === "masklet") return [obj.masklet.first_frame, obj.masklet.last_frame];
  return extentOf(obj.session.present());
}

/** The object has a mask on some frame it keeps (a track cut to frames where it is absent has none). */
export function hasFrames(obj) {
  if (obj.kind === "masklet") return true;
  const [a, b] = kept(obj.cut, extent(obj)) || [0, -1];
  return obj.session.present().some((f) => f >= a && f <= b);
}

/**
 * The verdict's masks, or why there are none to send:
 * → {masks} | {wait: text} (a tracker request still running) | {error: text}.
 */
export function verdictMasks(objects) {
  const masks = [];
  for (const obj of objects) {
    if (obj.kind === "track") {
      if (obj.session.state === "failed") return {error: `the tracked object #${obj.session.id} failed: delete it`};
      if (obj.session.state !== "done") return {wait: "Wait until the tracker has propagated every object."};
      if (!hasFrames(obj)) continue; // nothing left of it
    }
    const mask = obj.kind === "masklet" ? {mask_id: obj.id, tool: "existing"} : {track_id: obj.session.id, tool: "tracker"};
    mask.is_crowd = obj.isCrowd;
    if (obj.cut) mask.frame_range = [...obj.cut];
    masks.push(mask);
  }
  if (!masks.length) return {error: "There are no masklets to submit: add one, or press N if the phrase is not in the video."};
  return {masks};
}

/** "frames 3–20", "frames 3–20, cut to 5–12" (1-based, as the page shows frames). */
export function describeFrames(obj) {
  const e = extent(obj);
  if (!e) return "no frames yet";
  const text = `frames ${e[0] + 1}–${e[1] + 1}`;
  return obj.cut ? `${text}, cut to ${obj.cut[0] + 1}–${obj.cut[1] + 1}` : text;
}
