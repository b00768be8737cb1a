// The viewer's coordinate maths, pure: a view {scale, tx, ty} maps image pixels to CSS pixels of the
// canvas (screen = image * scale + t). Fitting, zooming about a point, panning, mapping clicks back
// to image pixels, and rectangle clipping.

export const MAX_SCALE = 64;
export const FIT_PAD = 16; // CSS pixels left around a fitted image

/** The view that shows the whole iw×ih image centred in a cssW×cssH canvas. */
export function fitView(cssW, cssH, iw, ih, pad = FIT_PAD) {
  const s = Math.min((cssW - 2 * pad) / iw, (cssH - 2 * pad) / ih);
  const scale = s > 0 ? s : 1;
  return {scale, tx: (cssW - iw * scale) / 2, ty: (cssH - ih * scale) / 2};
}

/** The view that centres the box [x, y, w, h] (image pixels) so that it fills about half the canvas. */
export function boxView([x, y, w, h], cssW, cssH) {
  const bw = Math.max(w, 8) * 2, bh = Math.max(h, 8) * 2;
  const scale = Math.min(MAX_SCALE, Math.min(cssW / bw, cssH / bh));
  return {scale, tx: cssW / 2 - (x + w / 2) * scale, ty: cssH / 2 - (y + h / 2) * scale};
}

/** Zoom by ``factor`` keeping the canvas point (mx, my) on the same image pixel; the scale stays
 * between a quarter of the fitting one and MAX_SCALE. */
export function zoomView(view, mx, my, factor, {cssW, cssH, iw, ih}) {
  const fitScale = Math.min(cssW / (iw || 1), cssH / (ih || 1));
  const scale = Math.min(MAX_SCALE, Math.max(fitScale * 0.25, view.scale * factor));
  const f = scale / view.scale;
  return {scale, tx: mx - (mx - view.tx) * f, ty: my - (my - view.ty) * f};
}

/** The view moved by (dx, dy) CSS pixels. */
export function panView(view, dx, dy) {
  return {scale: view.scale, tx: view.tx + dx, ty: view.ty + dy};
}

/** The zoom factor of a wheel event (deltaMode 0: pixels, 1: lines, 2: pages). */
export function wheelFactor(deltaY, deltaMode = 0) {
  const unit = deltaMode === 1 ? 40 : deltaMode === 2 ? 800 : 1;
  return Math.exp(-deltaY * unit * 0.0015);
}

/** Canvas CSS point → image coordinates (fractional). */
export function toImage(view, mx, my) {
  return {x: (mx - view.tx) / view.scale, y: (my - view.ty) / view.scale};
}

/** Image point → canvas CSS point. */
export function toScreen(view, x, y) {
  return {x: x * view.scale + view.tx, y: y * view.scale + view.ty};
}

/** The point lies on one of the iw×ih image's pixels. */
export function inImage(p, iw, ih) {
  return p.x >= 0 && p.y >= 0 && p.x < iw && p.y < ih;
}

/** The overlap of two rectangles {x, y, w, h} (w or h 0 or less when they do not overlap). */
export function intersect(a, b) {
  const x = Math.max(a.x, b.x), y = Math.max(a.y, b.y);
  return {x, y, w: Math.min(a.x + a.w, b.x + b.w) - x, h: Math.min(a.y + a.h, b.y + b.h) - y};
}

/** The zoom as the page shows it ("150 %"). */
export function zoomLabel(scale) {
  return `${Math.round(scale * 100)} %`;
}
