// Masks in the browser: COCO compressed RLE (pycocotools' rleToString / rleFrString) and binary
// bitmaps. Pure functions, no DOM: a bitmap is a Uint8Array of height*width bytes (0 or 1) in
// ROW-major order (index y*width + x, the order of canvas ImageData); RLE counts run in COLUMN-major
// (Fortran) order, starting with a run of zeros, as COCO stores them.

const ASCII_0 = 48;

// ------------------------------------------------------------------ the string format
// Each count is stored as its difference to the count two places before (from the fourth on),
// in 5-bit groups, least significant first: 0x20 marks "more groups follow", bit 0x10 of the
// last group is the sign; every group is written as the character 48 + value.

/** "counts" string → array of run lengths. Throws on a malformed string. */
export function countsFromString(s) {
  if (typeof s !== "string") throw new TypeError("RLE counts must be a string");
  const counts = [];
  let p = 0;
  while (p < s.length) {
    let x = 0, k = 0, more = true;
    while (more) {
      if (p >= s.length) throw new Error("RLE counts string ends inside a number");
      const c = s.charCodeAt(p) - ASCII_0;
      if (c < 0 || c > 63) throw new Error(`invalid character in RLE counts at ${p}`);
      x += (c & 0x1f) * 2 ** (5 * k);
      more = (c & 0x20) !== 0;
      p++; k++;
      if (!more && (c & 0x10)) x -= 2 ** (5 * k); // sign-extend
      if (k > 7) throw new Error("RLE count too large");
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    if (x < 0) throw new Error("negative run length in RLE counts");
    counts.push(x);
  }
  return counts;
}

/** Array of run lengths → "counts" string (byte-identical to pycocotools). */
export function countsToString(counts) {
  let s = "";
  for (let i = 0; i < counts.length; i++) {
    let x = counts[i];
    if (i > 2) x -= counts[i - 2];
    let more = true;
    while (more) {
      let c = ((x % 32) + 32) % 32; // x & 0x1f, for any sign and magnitude
      x = Math.floor(x / 32); // arithmetic shift right by 5
      more = (c & 0x10) ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      s += String.fromCharCode(c + ASCII_0);
    }
  }
  return s;
}

// ------------------------------------------------------------------ bitmaps <-> RLE
/** {size: [h, w], counts: string | number[]} → row-major bitmap (Uint8Array h*w). */
export function decode(rle) {
  const [h, w] = rle.size;
  const counts = typeof rle.counts === "string" ? countsFromString(rle.counts) : rle.counts;
  const n = h * w;
  const bits = new Uint8Array(n);
  let pos = 0; // column-major position
  for (let i = 0; i < counts.length; i++) {
    const run = counts[i];
    if (pos + run > n) throw new Error(`RLE runs cover ${pos + run} pixels, the mask has ${n}`);
    if (i % 2 === 1 && run > 0) {
      let col = Math.floor(pos / h), row = pos - col * h;
      for (let j = 0; j < run; j++) {
        bits[row * w + col] = 1;
        if (++row === h) { row = 0; col++; }
      }
    }
    pos += run;
  }
  return bits;
}

/** Run lengths (column-major, zeros first) of a row-major bitmap. */
export function runs(bits, h, w) {
  const counts = [];
  let value = 0, run = 0;
  for (let x = 0; x < w; x++) {
    for (let i = x; i < h * w; i += w) {
      const v = bits[i] ? 1 : 0;
      if (v !== value) { counts.push(run); run = 0; value = v; }
      run++;
    }
  }
  counts.push(run);
  return counts;
}

/** Row-major bitmap → {size: [h, w], counts: string}, as pycocotools.mask.encode writes it. */
export function encode(bits, h, w) {
  if (bits.length !== h * w) throw new Error(`bitmap has ${bits.length} pixels, expected ${h}x${w}`);
  return {size: [h, w], counts: countsToString(runs(bits, h, w))};
}

// ------------------------------------------------------------------ measurements
export function area(bits) {
  let a = 0;
  for (let i = 0; i < bits.length; i++) a += bits[i] ? 1 : 0;
  return a;
}

/** COCO box [x, y, w, h] of the set pixels; [0, 0, 0, 0] when empty. */
export function bbox(bits, h, w) {
  let x0 = w, y0 = h, x1 = -1, y1 = -1;
  for (let y = 0; y < h; y++) {
    const row = y * w;
    let first = -1, last = -1;
    for (let x = 0; x < w; x++) if (bits[row + x]) { if (first < 0) first = x; last = x; }
    if (first < 0) continue;
    if (y < y0) y0 = y;
    y1 = y;
    if (first < x0) x0 = first;
    if (last > x1) x1 = last;
  }
  return x1 < 0 ? [0, 0, 0, 0] : [x0, y0, x1 - x0 + 1, y1 - y0 + 1];
}

// ------------------------------------------------------------------ editing
/** Integer rectangle {x, y, w, h} grown by ``pad`` and clipped to the image. */
export function clipRect(r, h, w, pad = 0) {
  const x0 = Math.max(0, Math.floor(r.x - pad)), y0 = Math.max(0, Math.floor(r.y - pad));
  const x1 = Math.min(w, Math.ceil(r.x + r.w + pad)), y1 = Math.min(h, Math.ceil(r.y + r.h + pad));
  return {x: x0, y: y0, w: Math.max(0, x1 - x0), h: Math.max(0, y1 - y0)};
}

/** Set (value 1) or clear (0) a disc of ``radius`` pixels at (cx, cy); returns the touched rectangle. */
export function paintDisc(bits, h, w, cx, cy, radius, value) {
  const r = Math.max(0.5, radius);
  const rect = clipRect({x: cx - r, y: cy - r, w: 2 * r, h: 2 * r}, h, w, 1);
  const r2 = r * r;
  for (let y = rect.y; y < rect.y + rect.h; y++) {
    const dy = y + 0.5 - cy;
    for (let x = rect.x; x < rect.x + rect.w; x++) {
      const dx = x + 0.5 - cx;
      if (dx * dx + dy * dy <= r2) bits[y * w + x] = value;
    }
  }
  return rect;
}

/** A brush stroke from (x0, y0) to (x1, y1): discs every half radius; returns the touched rectangle. */
export function paintLine(bits, h, w, x0, y0, x1, y1, radius, value) {
  const dist = Math.hypot(x1 - x0, y1 - y0);
  const steps = Math.max(1, Math.ceil(dist / Math.max(0.5, radius / 2)));
  let rect = null;
  for (let i = 0; i <= steps; i++) {
    const t = i / steps;
    rect = union(rect, paintDisc(bits, h, w, x0 + (x1 - x0) * t, y0 + (y1 - y0) * t, radius, value));
  }
  return rect;
}

export function union(a, b) {
  if (!a || a.w === 0 || a.h === 0) return b;
  if (!b || b.w === 0 || b.h === 0) return a;
  const x = Math.min(a.x, b.x), y = Math.min(a.y, b.y);
  return {x, y, w: Math.max(a.x + a.w, b.x + b.w) - x, h: Math.max(a.y + a.h, b.y + b.h) - y};
}

// ------------------------------------------------------------------ drawing
/** RGBA pixels (Uint8ClampedArray rect.w*rect.h*4) of the mask inside ``rect``: the inside filled
 * with ``color`` at ``fillAlpha``, the edge (set pixels with an unset pixel, or the image border,
 * within ``edge`` pixels left, right, above or below) opaque at ``edgeAlpha``. */
export function rasterize(bits, h, w, rect, color, {fillAlpha = 96, edgeAlpha = 255, edge = 1} = {}) {
  const out = new Uint8ClampedArray(rect.w * rect.h * 4);
  const [r, g, b] = color;
  const at = (x, y) => x >= 0 && y >= 0 && x < w && y < h && bits[y * w + x] === 1;
  for (let y = rect.y; y < rect.y + rect.h; y++) {
    for (let x = rect.x; x < rect.x + rect.w; x++) {
      if (bits[y * w + x] !== 1) continue;
      let isEdge = false;
      for (let d = 1; d <= edge && !isEdge; d++) {
        isEdge = !at(x - d, y) || !at(x + d, y) || !at(x, y - d) || !at(x, y + d);
      }
      const o = ((y - rect.y) * rect.w + (x - rect.x)) * 4;
      out[o] = r; out[o + 1] = g; out[o + 2] = b;
      out[o + 3] = isEdge ? edgeAlpha : fillAlpha;
    }
  }
  return out;
}
