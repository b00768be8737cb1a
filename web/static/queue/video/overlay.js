// Masklets on the frame: each object's mask on the frame shown, in the object's colour (layers.js
// draws a mask as a translucent layer with an outline; rle.js decodes the COCO RLE).
//
//   MaskletFrames  the per-frame masks of the task's masklets, read page by page from
//                  GET /video/masklets/{id}/frames?start=&end= (at most 500 frames an answer).
//   LayerCache     decoded layers, bounded (a long video's masks are not all kept decoded).
//   layersAt()     the layers of the objects on one frame (an object: {key, color, alpha, style,
//                  at(frame) → {rle, bbox} | null}).

import {layerRect, makeLayer} from "../layers.js";
import * as RLE from "../rle.js";

export const LAYERS_KEPT = 192;

export class MaskletFrames {
  constructor(api) {
    this.api = api;
    this.byMask = new Map(); // mask id → Map(frame index → {rle, bbox, score})
  }

  /** Read every frame of a masklet {id, first_frame, last_frame}; ``onPage()`` after each answer. */
  async load(masklet, onPage = () => {}) {
    const frames = this.byMask.get(masklet.id) || new Map();
    this.byMask.set(masklet.id, frames);
    let start = masklet.first_frame;
    while (start <= masklet.last_frame) {
      const answer = await this.api("GET", `/video/masklets/${masklet.id}/frames?start=${start}&end=${masklet.last_frame}`);
      const got = Array.isArray(answer?.frames) ? answer.frames : [];
      let next = start;
      for (const f of got) {
        frames.set(f.frame_index, {rle: f.rle, bbox: f.bbox, score: f.score});
        next = Math.max(next, f.frame_index + 1);
      }
      onPage();
      if (!got.length || next === start) break; // nothing more (or an answer that does not move on)
      start = next;
    }
    return frames;
  }

  at(maskId, frame) { return this.byMask.get(maskId)?.get(frame) || null; }

  /** The frames of a masklet loaded so far (frame indices). */
  indices(maskId) { return [...(this.byMask.get(maskId)?.keys() || [])]; }
}

export class LayerCache {
  constructor(capacity = LAYERS_KEPT) {
    this.capacity = capacity;
    this.layers = new Map(); // key → layer (in order of use)
  }

  /** The layer of ``entry`` ({rle, bbox}) under ``key``, decoded once. */
  layer(key, entry, {color, style, h, w}) {
    let layer = this.layers.get(key);
    if (layer) {
      this.layers.delete(key);
    } else {
      if (!entry?.rle || entry.rle.size?.[0] !== h || entry.rle.size?.[1] !== w) return null;
      const bits = RLE.decode(entry.rle);
      layer = makeLayer(bits, h, w, color, layerRect(bits, h, w, entry.bbox), style);
      if (!layer) return null;
    }
    this.layers.set(key, layer);
    while (this.layers.size > this.capacity) this.layers.delete(this.layers.keys().next().value);
    return layer;
  }

  /** Forget the layers whose key starts with ``prefix`` (an object's colour or style changed). */
  drop(prefix) {
    for (const key of [...this.layers.keys()]) if (key.startsWith(prefix)) this.layers.delete(key);
  }
}

/** The layers of ``objects`` on ``frame`` (an object without a mask there adds nothing). */
export function layersAt(cache, objects, frame, {h, w}) {
  const out = [];
  for (const obj of objects) {
    const entry = obj.at(frame);
    if (!entry) continue;
    const style = obj.style || {fillAlpha: 90, edgeAlpha: 255};
    const layer = cache.layer(`${obj.key}:${style.fillAlpha}:${frame}`, entry, {color: obj.color, style, h, w});
    if (!layer) continue;
    layer.alpha = obj.alpha ?? 1;
    out.push(layer);
  }
  return out;
}
