// Masks as viewer layers: a layer is a canvas holding a mask's pixels inside a rectangle of the image
// (fill and outline, see rle.js rasterize), drawn by the viewer over the image. A MaskItem is one mask
// of a task (a candidate or one made on the page) that decodes its RLE only when needed.

import * as RLE from "./rle.js";
import {intersect} from "./geometry.js";

export const PALETTE = [[79, 140, 255], [47, 191, 113], [245, 165, 36], [240, 82, 82], [178, 102, 255],
  [0, 200, 200], [255, 120, 200], [160, 200, 60], [255, 150, 80], [120, 160, 255]];
export const TARGET_COLOR = [255, 214, 0];
export const WORKING_COLOR = [0, 229, 255];

/** The outline's width in image pixels: thicker on large images. */
export function edgeWidth(h, w) { return Math.max(1, Math.round(Math.max(h, w) / 1000)); }

/** The rectangle a layer needs: the API's box when it has one, otherwise measured; null when empty. */
export function layerRect(bits, h, w, box) {
  if (box && box.length === 4 && box[2] > 0 && box[3] > 0) {
    return RLE.clipRect({x: box[0], y: box[1], w: box[2], h: box[3]}, h, w, 1);
  }
  const [x, y, bw, bh] = RLE.bbox(bits, h, w);
  return bw ? {x, y, w: bw, h: bh} : null;
}

/** A layer with the mask's pixels inside ``rect`` (image coordinates), or null when the rect is empty. */
export function makeLayer(bits, h, w, color, rect, style = {}) {
  if (!rect || rect.w <= 0 || rect.h <= 0) return null;
  const canvas = document.createElement("canvas");
  canvas.width = rect.w;
  canvas.height = rect.h;
  const layer = {canvas, x: rect.x, y: rect.y, w: rect.w, h: rect.h, color, style, alpha: 1};
  paintLayer(layer, bits, h, w, rect);
  return layer;
}

/** Repaint the part of ``layer`` inside ``rect`` from the bitmap (after a brush stroke). */
export function paintLayer(layer, bits, h, w, rect) {
  const r = RLE.clipRect(intersect(rect, layer), h, w);
  if (r.w <= 0 || r.h <= 0) return;
  const pixels = RLE.rasterize(bits, h, w, r, layer.color, {edge: edgeWidth(h, w), ...layer.style});
  layer.canvas.getContext("2d").putImageData(new ImageData(pixels, r.w, r.h), r.x - layer.x, r.y - layer.y);
}

export class MaskItem {
  constructor({id = null, rle = null, bits = null, box = null, h, w, isCrowd = false, tool = "existing",
    color, score = null, edited = false}) {
    Object.assign(this, {id, rle, box, h, w, isCrowd, tool, color, score, edited});
    this._bits = bits;
    this.layer = null;
    this.area = bits ? RLE.area(bits) : null;
  }

  get bits() {
    if (!this._bits) {
      this._bits = RLE.decode(this.rle);
      this.area = RLE.area(this._bits);
    }
    return this._bits;
  }

  set bits(value) {
    this._bits = value;
    this.area = RLE.area(value);
    this.layer = null;
    this.box = null;
  }

  /** The overlay; ``full`` makes it cover the whole image (while a brush edits it). */
  getLayer(style = {}, full = false) {
    if (full && !(this.layer && this.layer.w === this.w && this.layer.h === this.h)) {
      this.layer = makeLayer(this.bits, this.h, this.w, this.color, {x: 0, y: 0, w: this.w, h: this.h}, style);
    } else if (!this.layer) {
      const bits = this.bits;
      this.layer = makeLayer(bits, this.h, this.w, this.color, layerRect(bits, this.h, this.w, this.box), style);
      if (!this.edited && this.id !== null && this.tool === "existing" && this.rle) this._bits = null; // memory
    }
    return this.layer;
  }
}

/** The task's masks that fit its image, in the palette's colours; ``warn`` hears of the others. */
export function taskMasks(task, warn) {
  const {width: w, height: h} = task.image;
  const items = [];
  task.masks.forEach((m, i) => {
    if (!m.rle || !Array.isArray(m.rle.size) || m.rle.size[0] !== h || m.rle.size[1] !== w) {
      warn(`Mask ${m.id} does not fit the image and is not shown.`);
      return;
    }
    try {
      RLE.countsFromString(m.rle.counts); // validate now, not while drawing
    } catch (err) {
      warn(`Mask ${m.id} cannot be read (${err.message}).`);
      return;
    }
    items.push(new MaskItem({id: m.id, rle: m.rle, box: m.bbox, h, w, isCrowd: !!m.is_crowd, score: m.score,
      color: PALETTE[i % PALETTE.length]}));
  });
  return items;
}
