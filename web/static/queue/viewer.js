// The image viewer: an image on a canvas with zoom (wheel) and pan (space+drag, middle drag), masks as
// translucent layers over it (layers.js), and a tool that receives clicks and strokes in image
// coordinates and draws over the view. Knows nothing of tasks or the queue: any page with a stage
// element and a canvas in it can use it (a video page shows one frame at a time the same way).
//
//   tool   {down(p, event), move(p, event) → redraw?, up(p, event), draw(ctx, viewer)}, all optional;
//          p is {x, y} in image pixels plus {mx, my} on the canvas.

import * as geo from "./geometry.js";

export class Viewer {
  /** stage: the element the canvas fills (watched for size); onZoom(text): the zoom level to show. */
  constructor(stage, canvas, {onZoom = () => {}} = {}) {
    Object.assign(this, {stage, canvas, ctx: canvas.getContext("2d"), onZoom, img: null, iw: 0, ih: 0,
      scale: 1, tx: 0, ty: 0, fitted: true, layers: [], showMasks: true, tool: null, space: false, pan: null,
      hover: null, queued: false, cssW: 1, cssH: 1, dpr: 1});
    new ResizeObserver(() => this.resize()).observe(stage);
    canvas.addEventListener("wheel", (e) => this.onWheel(e), {passive: false});
    canvas.addEventListener("pointerdown", (e) => this.onDown(e));
    canvas.addEventListener("pointermove", (e) => this.onMove(e));
    canvas.addEventListener("pointerup", (e) => this.onUp(e));
    canvas.addEventListener("pointercancel", (e) => this.onUp(e));
    canvas.addEventListener("pointerleave", () => { this.hover = null; this.redraw(); });
    canvas.addEventListener("mousedown", (e) => { if (e.button === 1) e.preventDefault(); }); // no autoscroll
    canvas.addEventListener("contextmenu", (e) => e.preventDefault());
    canvas.addEventListener("auxclick", (e) => e.preventDefault());
    this.resize();
  }

  get view() { return {scale: this.scale, tx: this.tx, ty: this.ty}; }

  setView({scale, tx, ty}, fitted = false) {
    Object.assign(this, {scale, tx, ty, fitted});
    this.redraw();
  }

  resize() {
    const rect = this.stage.getBoundingClientRect();
    this.dpr = window.devicePixelRatio || 1;
    this.cssW = Math.max(1, rect.width);
    this.cssH = Math.max(1, rect.height);
    this.canvas.width = Math.round(this.cssW * this.dpr);
    this.canvas.height = Math.round(this.cssH * this.dpr);
    if (this.fitted) this.fit(); else this.redraw();
  }

  setImage(img, w, h) {
    Object.assign(this, {img, iw: w, ih: h, layers: [], tool: null, hover: null});
    this.fit();
  }

  clear() {
    Object.assign(this, {img: null, iw: 0, ih: 0, layers: [], tool: null});
    this.redraw();
  }

  fit() {
    this.setView(this.iw ? geo.fitView(this.cssW, this.cssH, this.iw, this.ih) : this.view, true);
  }

  /** Zoom so that the box [x, y, w, h] (image pixels) fills about half the view. */
  fitBox(box) { this.setView(geo.boxView(box, this.cssW, this.cssH)); }

  zoomAt(mx, my, factor) {
    this.setView(geo.zoomView(this.view, mx, my, factor, {cssW: this.cssW, cssH: this.cssH, iw: this.iw, ih: this.ih}));
  }

  /** Zoom about the middle of the view. */
  zoomCentre(factor) { this.zoomAt(this.cssW / 2, this.cssH / 2, factor); }

  toggleMasks() {
    this.showMasks = !this.showMasks;
    this.redraw();
  }

  /** Pointer event → image coordinates (x, y) and canvas coordinates (mx, my). */
  toImage(e) {
    const r = this.canvas.getBoundingClientRect();
    const mx = e.clientX - r.left, my = e.clientY - r.top;
    return {...geo.toImage(this.view, mx, my), mx, my};
  }

  toScreen(x, y) { return geo.toScreen(this.view, x, y); }

  inImage(p) { return geo.inImage(p, this.iw, this.ih); }

  onWheel(e) {
    e.preventDefault();
    if (!this.img) return;
    const p = this.toImage(e);
    this.zoomAt(p.mx, p.my, geo.wheelFactor(e.deltaY, e.deltaMode));
  }

  onDown(e) {
    if (!this.img) return;
    if (e.button === 1 || (e.button === 0 && this.space)) {
      e.preventDefault();
      this.pan = {x: e.clientX, y: e.clientY, view: this.view, id: e.pointerId};
      this.canvas.setPointerCapture(e.pointerId);
      this.stage.classList.add("panning");
      return;
    }
    if (this.tool && (e.button === 0 || e.button === 2)) {
      this.canvas.setPointerCapture(e.pointerId);
      this.tool.down?.(this.toImage(e), e);
    }
  }

  onMove(e) {
    if (this.pan) {
      this.setView(geo.panView(this.pan.view, e.clientX - this.pan.x, e.clientY - this.pan.y));
      return;
    }
    this.hover = this.toImage(e);
    if (this.tool?.move?.(this.hover, e)) this.redraw();
  }

  onUp(e) {
    if (this.pan && this.pan.id === e.pointerId) {
      this.pan = null;
      this.stage.classList.remove("panning");
      return;
    }
    this.tool?.up?.(this.toImage(e), e);
  }

  /** Space held: a left drag pans. */
  setSpace(on) {
    this.space = on;
    this.stage.classList.toggle("pan-ready", on);
  }

  redraw() {
    if (this.queued) return;
    this.queued = true;
    requestAnimationFrame(() => { this.queued = false; this.draw(); });
  }

  draw() {
    const {ctx, dpr, canvas} = this;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    this.onZoom(this.img ? geo.zoomLabel(this.scale) : "");
    if (!this.img) return;
    ctx.setTransform(dpr * this.scale, 0, 0, dpr * this.scale, dpr * this.tx, dpr * this.ty);
    ctx.imageSmoothingEnabled = this.scale < 4;
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(this.img, 0, 0, this.iw, this.ih);
    if (this.showMasks) {
      ctx.imageSmoothingEnabled = false;
      for (const layer of this.layers) {
        if (!layer) continue;
        ctx.globalAlpha = layer.alpha;
        ctx.drawImage(layer.canvas, layer.x, layer.y);
      }
      ctx.globalAlpha = 1;
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    this.tool?.draw?.(ctx, this);
  }
}
