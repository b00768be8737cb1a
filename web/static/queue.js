// The annotator's task page: one task at a time, keyboard first.
//
//   queue controller  lease (POST /tasks/next) → show → submit | skip | lease lost → next …
//                     While a task is shown the next one is already leased and its image loaded
//                     (prefetch), so a verdict shows the next task at once; the verdict itself is
//                     sent in the background and retried with the same client_id until the server
//                     answers. Every held lease gets a heartbeat; a lost one is dropped.
//   modes             verify_mask, check_exhaustivity, correct: what the side panel shows, the
//                     keys, the mask layers; correct also edits masks (tracker clicks, brush).
//   viewer            the image on a canvas with zoom (wheel) and pan (space+drag, middle drag),
//                     masks as translucent layers with outlines (built from RLE, see rle.js).
//
//   task kinds        the annotator picks among the kinds they may take (/auth/me allowed_kinds); the
//                     choice is remembered per user (localStorage) and sent as ``kinds`` to /tasks/next.
//   empty queue       /tasks/next answers {task: null, message, blocked, waiting}: the page shows the
//                     message, the open tasks that are not for this person and why, and the kinds that
//                     have work waiting (one click asks for such a kind too).
//
// For tests and tooling the page sets on <body>: data-state ("busy" | "ready" | "empty" | "error"),
// data-kinds (the kinds asked for, comma-separated),
// data-task-id, data-task-kind, data-pending (verdicts not yet stored) and, on correct tasks,
// data-mask-count, data-segmenting ("1" while a click-to-segment request runs), data-segmented
// (how many clicks the working mask reflects) and data-working ("1" when a working mask is shown).
//
// Phrases and captions are model output: they reach the page as text only (textContent, DE.el text).
"use strict";

(() => {
  const IDLE_MS = 30_000; // time counts as active when the user did something within this long
  const POLL_MS = 10_000; // empty queue: ask again this often
  const DEFAULT_HEARTBEAT_S = 60; // queue.heartbeat_s's default; used unless the API says otherwise
  const RETRY_MAX_MS = 15_000;
  const IDLE_HOLD_MS = 10 * 60_000; // after this long without input, leases are no longer renewed
  const PALETTE = [[79, 140, 255], [47, 191, 113], [245, 165, 36], [240, 82, 82], [178, 102, 255],
    [0, 200, 200], [255, 120, 200], [160, 200, 60], [255, 150, 80], [120, 160, 255]];
  const TARGET_COLOR = [255, 214, 0];
  const WORKING_COLOR = [0, 229, 255];
  const KIND_NAMES = {verify_mask: "Verify mask", check_exhaustivity: "Check every instance", correct: "Correct masks"};
  const COMMON_HELP = [["K", "skip this task"], ["Wheel, + −", "zoom"], ["Space+drag, middle drag", "pan"],
    ["F", "fit the image"], ["V", "hide / show masks"], ["?", "hide / show this help"]];

  const $ = (id) => document.getElementById(id);
  const body = document.body;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  let viewer = null;
  let me = null; // the signed-in user (csrf_token for requests sent while the page goes away)
  let lastInputAt = performance.now();
  let heartbeatMs = DEFAULT_HEARTBEAT_S * 1000;
  let brushPref = null; // brush diameter in image pixels, once the user chose one

  // ============================================================ small UI helpers
  function setState(state) { body.dataset.state = state; }

  function notify(text, kind = "info", ms = kind === "error" ? 9000 : 4500) {
    const toast = DE.el("div", {class: `toast ${kind}`, text, role: kind === "error" ? "alert" : "status"});
    $("toasts").append(toast);
    setTimeout(() => toast.remove(), ms);
  }

  function stageMessage(text, isError = false) {
    const node = $("stage-message");
    node.textContent = text || "";
    node.classList.toggle("error", isError);
  }

  // A button that never keeps the focus (Enter or Space must not re-press it later).
  function actionButton(label, key, cls, onClick) {
    const node = DE.el("button", {type: "button", class: cls}, [DE.el("span", {text: label}), DE.el("kbd", {text: key})]);
    node.addEventListener("mousedown", (e) => e.preventDefault());
    node.addEventListener("click", () => { node.blur(); onClick(); });
    return node;
  }

  function isTyping(target) {
    if (!(target instanceof HTMLElement)) return false;
    if (target.isContentEditable || target.tagName === "TEXTAREA" || target.tagName === "SELECT") return true;
    return target.tagName === "INPUT" && !["range", "checkbox", "radio", "button"].includes(target.type);
  }

  function term(text) { return DE.el("span", {class: "term", text}); }

  // ============================================================ active time
  // Milliseconds the page was visible and the user had done something within the last IDLE_MS.
  class ActiveClock {
    constructor() { this.total = 0; this.running = false; }
    start(now = performance.now()) {
      this.running = true; this.last = now; this.lastInput = now; this.visible = !document.hidden;
    }
    tick(now = performance.now()) {
      if (this.running && this.visible) {
        const until = Math.min(now, this.lastInput + IDLE_MS);
        if (until > this.last) this.total += until - this.last;
      }
      this.last = now;
    }
    input(now = performance.now()) { this.tick(now); this.lastInput = now; }
    visibility(visible, now = performance.now()) { this.tick(now); this.visible = visible; }
    stop() { this.tick(); this.running = false; return Math.ceil(this.total); }
  }

  // ============================================================ mask layers
  function edgeWidth(h, w) { return Math.max(1, Math.round(Math.max(h, w) / 1000)); }

  // The rectangle a layer needs: the API's box when it has one, otherwise measured.
  function layerRect(bits, h, w, box) {
    if (box && box.length === 4 && box[2] > 0 && box[3] > 0) {
      return RLE.clipRect({x: box[0], y: box[1], w: box[2], h: box[3]}, h, w, 1);
    }
    const [x, y, bw, bh] = RLE.bbox(bits, h, w);
    return bw ? {x, y, w: bw, h: bh} : null;
  }

  // A canvas holding the mask's pixels inside ``rect`` (image coordinates), or null when empty.
  function makeLayer(bits, h, w, color, rect, style = {}) {
    if (!rect || rect.w <= 0 || rect.h <= 0) return null;
    const canvas = document.createElement("canvas");
    canvas.width = rect.w; canvas.height = rect.h;
    const layer = {canvas, x: rect.x, y: rect.y, w: rect.w, h: rect.h, color, style, alpha: 1};
    paintLayer(layer, bits, h, w, rect);
    return layer;
  }

  function paintLayer(layer, bits, h, w, rect) {
    const r = RLE.clipRect({x: Math.max(rect.x, layer.x), y: Math.max(rect.y, layer.y),
      w: Math.min(rect.x + rect.w, layer.x + layer.w) - Math.max(rect.x, layer.x),
      h: Math.min(rect.y + rect.h, layer.y + layer.h) - Math.max(rect.y, layer.y)}, h, w);
    if (r.w <= 0 || r.h <= 0) return;
    const pixels = RLE.rasterize(bits, h, w, r, layer.color, {edge: edgeWidth(h, w), ...layer.style});
    layer.canvas.getContext("2d").putImageData(new ImageData(pixels, r.w, r.h), r.x - layer.x, r.y - layer.y);
  }

  // A mask of the task: a candidate (id) or one made here. Bits are decoded only when needed.
  class MaskItem {
    constructor({id = null, rle = null, bits = null, box = null, h, w, isCrowd = false, tool = "existing",
      color, score = null, edited = false}) {
      Object.assign(this, {id, rle, box, h, w, isCrowd, tool, color, score, edited});
      this._bits = bits;
      this.layer = null;
      this.area = bits ? RLE.area(bits) : null;
    }
    get bits() {
      if (!this._bits) { this._bits = RLE.decode(this.rle); this.area = RLE.area(this._bits); }
      return this._bits;
    }
    set bits(value) { this._bits = value; this.area = RLE.area(value); this.layer = null; this.box = null; }
    // the overlay; ``full`` makes it cover the whole image (while a brush edits it)
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

  function taskMasks(task) {
    const {width: w, height: h} = task.image;
    const items = [];
    task.masks.forEach((m, i) => {
      if (!m.rle || !Array.isArray(m.rle.size) || m.rle.size[0] !== h || m.rle.size[1] !== w) {
        notify(`Mask ${m.id} does not fit the image and is not shown.`, "warn");
        return;
      }
      try {
        RLE.countsFromString(m.rle.counts); // validate now, not while drawing
      } catch (err) {
        notify(`Mask ${m.id} cannot be read (${err.message}).`, "warn");
        return;
      }
      items.push(new MaskItem({id: m.id, rle: m.rle, box: m.bbox, h, w, isCrowd: !!m.is_crowd, score: m.score,
        color: PALETTE[i % PALETTE.length]}));
    });
    return items;
  }

  // ============================================================ viewer
  class Viewer {
    constructor(stage, canvas) {
      Object.assign(this, {stage, canvas, ctx: canvas.getContext("2d"), img: null, iw: 0, ih: 0, scale: 1,
        tx: 0, ty: 0, fitted: true, layers: [], showMasks: true, tool: null, space: false, pan: null,
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

    resize() {
      const rect = this.stage.getBoundingClientRect();
      this.dpr = window.devicePixelRatio || 1;
      this.cssW = Math.max(1, rect.width); this.cssH = Math.max(1, rect.height);
      this.canvas.width = Math.round(this.cssW * this.dpr);
      this.canvas.height = Math.round(this.cssH * this.dpr);
      if (this.fitted) this.fit(); else this.redraw();
    }

    setImage(img, w, h) {
      Object.assign(this, {img, iw: w, ih: h, layers: [], tool: null, hover: null});
      this.fit();
    }

    clear() { Object.assign(this, {img: null, iw: 0, ih: 0, layers: [], tool: null}); this.redraw(); }

    fit() {
      if (this.iw) {
        const pad = 16;
        const s = Math.min((this.cssW - 2 * pad) / this.iw, (this.cssH - 2 * pad) / this.ih);
        this.scale = s > 0 ? s : 1;
        this.tx = (this.cssW - this.iw * this.scale) / 2;
        this.ty = (this.cssH - this.ih * this.scale) / 2;
      }
      this.fitted = true;
      this.redraw();
    }

    // zoom so that the box [x, y, w, h] fills about half the view
    fitBox([x, y, w, h]) {
      const bw = Math.max(w, 8) * 2, bh = Math.max(h, 8) * 2;
      this.scale = Math.min(64, Math.min(this.cssW / bw, this.cssH / bh));
      this.tx = this.cssW / 2 - (x + w / 2) * this.scale;
      this.ty = this.cssH / 2 - (y + h / 2) * this.scale;
      this.fitted = false;
      this.redraw();
    }

    zoomAt(mx, my, factor) {
      const fitScale = Math.min(this.cssW / (this.iw || 1), this.cssH / (this.ih || 1));
      const s = Math.min(64, Math.max(fitScale * 0.25, this.scale * factor));
      const f = s / this.scale;
      this.tx = mx - (mx - this.tx) * f;
      this.ty = my - (my - this.ty) * f;
      this.scale = s;
      this.fitted = false;
      this.redraw();
    }

    // pointer event → image coordinates (x, y) and canvas coordinates (mx, my)
    toImage(e) {
      const r = this.canvas.getBoundingClientRect();
      const mx = e.clientX - r.left, my = e.clientY - r.top;
      return {x: (mx - this.tx) / this.scale, y: (my - this.ty) / this.scale, mx, my};
    }

    toScreen(x, y) { return {x: x * this.scale + this.tx, y: y * this.scale + this.ty}; }

    inImage(p) { return p.x >= 0 && p.y >= 0 && p.x < this.iw && p.y < this.ih; }

    onWheel(e) {
      e.preventDefault();
      if (!this.img) return;
      const p = this.toImage(e);
      const unit = e.deltaMode === 1 ? 40 : e.deltaMode === 2 ? 800 : 1;
      this.zoomAt(p.mx, p.my, Math.exp(-e.deltaY * unit * 0.0015));
    }

    onDown(e) {
      if (!this.img) return;
      if (e.button === 1 || (e.button === 0 && this.space)) {
        e.preventDefault();
        this.pan = {x: e.clientX, y: e.clientY, tx: this.tx, ty: this.ty, id: e.pointerId};
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
        this.tx = this.pan.tx + e.clientX - this.pan.x;
        this.ty = this.pan.ty + e.clientY - this.pan.y;
        this.fitted = false;
        this.redraw();
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
      $("zoom-level").textContent = this.img ? `${Math.round(this.scale * 100)} %` : "";
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

  // ============================================================ modes (one per task kind)
  // A mode: question() → nodes, actions [[label, key, class, fn]], keys {key: fn}, help [[key, text]],
  // mount() / unmount(), and optionally undo(), changed, and the editor's hooks.

  function verifyMode(entry) {
    const t = entry.task;
    const items = taskMasks(t);
    const target = items.find((m) => m.id === t.target_mask_id);
    if (target) target.color = TARGET_COLOR;
    let zoomed = false;
    const decide = (label) => () => submit(label);
    const zoom = () => {
      if (!target || zoomed) { viewer.fit(); zoomed = false; return; }
      const [x, y, w, h] = RLE.bbox(target.bits, target.h, target.w);
      if (w) { viewer.fitBox([x, y, w, h]); zoomed = true; }
    };
    return {
      question: () => ["Is the ", DE.el("span", {class: "target-word", text: "yellow"}), " mask one whole instance of ",
        term(t.phrase), ", and nothing else?"],
      actions: [["Accept", "A", "ok", decide("accept")], ["Reject", "R", "bad", decide("reject")],
        ["Ungroundable", "U", "warn", decide("ungroundable")]],
      keys: {a: decide("accept"), r: decide("reject"), u: decide("ungroundable"), z: zoom},
      help: [["A", "accept: the mask is one correct, complete instance"], ["R", "reject: wrong object or sloppy mask"],
        ["U", "ungroundable: the phrase names nothing one could outline"], ["Z", "zoom to the mask / back"]],
      mount() {
        zoomed = false;
        const others = items.filter((m) => m !== target).map((m) => {
          const layer = m.getLayer({fillAlpha: 60, edgeAlpha: 200});
          if (layer) layer.alpha = 0.35;
          return layer;
        });
        viewer.layers = [...others, target ? target.getLayer({fillAlpha: 110, edgeAlpha: 255}) : null];
        if (!target) stageMessage("The mask to verify is missing from this task: skip it (K).", true);
      },
      unmount() {},
    };
  }

  function exhaustivityMode(entry) {
    const t = entry.task;
    const items = taskMasks(t);
    const decide = (label) => () => submit(label);
    return {
      question: () => ["Does every ", term(t.phrase), " in the image have a mask? ",
        DE.el("span", {class: "muted", text: `(${items.length} mask${items.length === 1 ? "" : "s"} shown)`})],
      actions: [["Complete", "C", "ok", decide("complete")], ["Instances missing", "M", "warn", decide("missing")],
        ["Not present", "N", "bad", decide("not_present")]],
      keys: {c: decide("complete"), m: decide("missing"), n: decide("not_present")},
      help: [["C", "complete: every instance has a mask"], ["M", "some instances have no mask"],
        ["N", "the phrase is not in the image"]],
      mount() { viewer.layers = items.map((m) => m.getLayer({fillAlpha: 90, edgeAlpha: 255})); },
      unmount() {},
    };
  }

  // The correction editor: candidates to keep or delete, new masks by tracker clicks, brush and eraser.
  class CorrectMode {
    constructor(entry) {
      this.entry = entry;
      this.task = entry.task;
      this.h = this.task.image.height; this.w = this.task.image.width;
      this.masks = taskMasks(this.task);
      this.colorIndex = this.masks.length;
      this.selected = null;
      this.tool = "point";
      this.points = []; // [x, y, label] for the working mask
      this.working = null; // {bits, area, score, layer}
      this.seq = 0; // the latest click-to-segment request
      this.undoStack = [];
      this.stroke = null;
      this.changed = false;
      this.mounted = false;
      const decide = (label) => () => this.submit(label);
      this.actions = [["Submit masks", "S", "ok", decide("corrected")], ["Not present", "N", "bad", decide("not_present")]];
      this.keys = {
        s: decide("corrected"), n: decide("not_present"), p: () => this.setTool("point"),
        b: () => this.setTool("brush"), e: () => this.setTool("eraser"), Enter: () => this.keep(),
        Escape: () => this.escape(), Delete: () => this.deleteSelected(), Backspace: () => this.deleteSelected(),
        c: () => this.toggleCrowd(), "[": () => this.resizeBrush(1 / 1.25), "]": () => this.resizeBrush(1.25),
        Tab: () => this.cycle(),
      };
      for (let i = 1; i <= 9; i++) this.keys[String(i)] = () => this.select(this.masks[i - 1] || null);
      this.help = [["Click", "add a point on the object (tracker)"], ["Shift+click, right click", "point outside it"],
        ["Enter", "keep the working mask"], ["Esc", "drop the points / deselect"], ["1–9, Tab", "select a mask"],
        ["Del", "delete the selected mask"], ["C", "crowd on / off"], ["P B E", "click tool, brush, eraser"],
        ["[ ]", "brush size"], ["Ctrl+Z", "undo"], ["S", "submit the masks"], ["N", "phrase not present (no masks)"]];
    }

    question() {
      return ["Mask every ", term(this.task.phrase),
        ": keep the good candidates, delete wrong ones, add the missing ones."];
    }

    mount() {
      this.mounted = true;
      $("editor").hidden = false;
      if (brushPref === null) brushPref = Math.max(2, Math.round(Math.min(this.w, this.h) / 30));
      this.syncBrushUI();
      this.setTool(this.tool);
      viewer.tool = this;
      this.refresh();
    }

    unmount() {
      this.mounted = false;
      this.seq++; // a click-to-segment answer arriving now is dropped
      this.stroke = null;
      $("editor").hidden = true;
      for (const key of ["maskCount", "segmenting", "segmented", "working"]) delete body.dataset[key];
    }

    // -- viewer hooks
    down(p, e) {
      if (this.tool === "point") {
        if (!viewer.inImage(p)) return;
        this.addPoint(p.x, p.y, e.button === 2 || e.shiftKey ? 0 : 1);
      } else if (e.button === 0) {
        this.startStroke(p);
      }
    }

    move(p) {
      if (this.stroke) {
        this.paint(this.stroke.last, p);
        this.stroke.last = p;
      }
      return this.tool !== "point"; // the brush outline follows the pointer
    }

    up() { if (this.stroke) this.endStroke(); }

    draw(ctx, v) {
      for (const [x, y, label] of this.points) {
        const s = v.toScreen(x, y);
        ctx.beginPath();
        ctx.arc(s.x, s.y, 6, 0, 2 * Math.PI);
        ctx.fillStyle = label ? "#2fbf71" : "#f05252";
        ctx.fill();
        ctx.lineWidth = 2; ctx.strokeStyle = "#fff"; ctx.stroke();
        ctx.beginPath();
        ctx.moveTo(s.x - 3, s.y); ctx.lineTo(s.x + 3, s.y);
        if (label) { ctx.moveTo(s.x, s.y - 3); ctx.lineTo(s.x, s.y + 3); }
        ctx.lineWidth = 1.5; ctx.stroke();
      }
      if (this.tool !== "point" && v.hover) {
        const s = v.toScreen(v.hover.x, v.hover.y);
        const r = Math.max(1, (brushPref / 2) * v.scale);
        ctx.beginPath(); ctx.arc(s.x, s.y, r, 0, 2 * Math.PI);
        ctx.lineWidth = 3; ctx.strokeStyle = "rgba(0,0,0,.7)"; ctx.stroke();
        ctx.lineWidth = 1.5; ctx.strokeStyle = this.tool === "brush" ? "#fff" : "#f05252"; ctx.stroke();
      }
    }

    // -- tracker clicks
    addPoint(x, y, label) {
      this.points.push([Math.round(x * 10) / 10, Math.round(y * 10) / 10, label]);
      this.pushUndo(() => {
        this.points.pop();
        if (this.points.length) this.segment(); else this.dropWorking();
      });
      this.segment();
      viewer.redraw();
    }

    async segment() {
      const seq = ++this.seq;
      const points = this.points.slice();
      body.dataset.segmenting = "1";
      $("working-info").textContent = "Segmenting…";
      try {
        const out = await DE.api("POST", `/tasks/${this.task.id}/segment`, {points});
        if (seq !== this.seq || !this.mounted) return;
        const bits = RLE.decode(out.rle);
        const area = RLE.area(bits);
        const layer = makeLayer(bits, this.h, this.w, WORKING_COLOR, layerRect(bits, this.h, this.w),
          {fillAlpha: 120, edgeAlpha: 255});
        this.working = {bits, area, score: out.score, layer};
      } catch (err) {
        if (seq !== this.seq || !this.mounted) return;
        if (err.status === 409) { lost(this.entry); return; }
        notify(`Click to segment failed: ${err.message}`, "error");
      } finally {
        if (seq === this.seq && this.mounted) {
          body.dataset.segmenting = "0";
          body.dataset.segmented = String(points.length);
          this.refresh();
        }
      }
    }

    dropWorking() {
      this.seq++;
      this.points = [];
      this.working = null;
      body.dataset.segmenting = "0";
      this.refresh();
    }

    keep() {
      if (!this.working) {
        notify(this.points.length ? "Wait for the mask…" : "Click on an object first.", "warn");
        return;
      }
      if (this.working.area === 0) {
        notify("The working mask is empty: add a point on the object.", "warn");
        return;
      }
      const item = new MaskItem({bits: this.working.bits, h: this.h, w: this.w, tool: "tracker", edited: true,
        color: this.nextColor()});
      const points = this.points, working = this.working;
      this.masks.push(item);
      this.points = []; this.working = null; this.seq++;
      this.changed = true;
      this.pushUndo(() => {
        this.remove(item);
        this.points = points; this.working = working;
      });
      this.select(item);
    }

    escape() {
      if (this.points.length || this.working) this.dropWorking();
      else this.select(null);
    }

    // -- brush and eraser
    startStroke(p) {
      let target = this.selected, created = false;
      if (!target) {
        if (this.tool === "eraser") { notify("Select the mask to erase from (1–9 or click it in the list).", "warn"); return; }
        target = new MaskItem({bits: new Uint8Array(this.h * this.w), h: this.h, w: this.w, tool: "brush",
          edited: true, color: this.nextColor()});
        this.masks.push(target);
        created = true;
        this.select(target);
      }
      const before = target.bits.slice();
      const beforeTool = target.tool, beforeEdited = target.edited;
      target.edited = true;
      if (target.tool === "existing") target.tool = "brush";
      target.getLayer(this.layerStyle(target), true);
      this.stroke = {target, before, beforeTool, beforeEdited, created, last: p};
      this.refresh(false);
      this.paint(p, p);
    }

    paint(a, b) {
      const target = this.stroke.target;
      const bits = target.bits;
      const dirty = RLE.paintLine(bits, this.h, this.w, a.x, a.y, b.x, b.y, brushPref / 2, this.tool === "brush" ? 1 : 0);
      if (dirty && target.layer) paintLayer(target.layer, bits, this.h, this.w, RLE.clipRect(dirty, this.h, this.w, edgeWidth(this.h, this.w) + 1));
      viewer.redraw();
    }

    endStroke() {
      const {target, before, beforeTool, beforeEdited, created} = this.stroke;
      this.stroke = null;
      target.area = RLE.area(target.bits);
      this.changed = true;
      this.pushUndo(() => {
        if (created) { this.remove(target); return; }
        target.bits = before; target.tool = beforeTool; target.edited = beforeEdited;
        this.refresh();
      });
      this.refresh();
    }

    setTool(tool) {
      this.tool = tool;
      for (const node of document.querySelectorAll(".tools button")) node.classList.toggle("active", node.dataset.tool === tool);
      viewer.stage.classList.toggle("tool-brush", tool === "brush");
      viewer.stage.classList.toggle("tool-eraser", tool === "eraser");
      viewer.redraw();
    }

    resizeBrush(factor) {
      brushPref = Math.max(1, Math.min(200, Math.round(brushPref * factor) + (factor > 1 ? 1 : 0)));
      this.syncBrushUI();
      viewer.redraw();
    }

    syncBrushUI() {
      $("brush-size").value = String(brushPref);
      $("brush-size-value").textContent = `${brushPref} px`;
    }

    // -- the mask list
    nextColor() { return PALETTE[this.colorIndex++ % PALETTE.length]; }

    select(item) {
      this.selected = item;
      this.refresh();
    }

    cycle() {
      if (!this.masks.length) return;
      const i = this.masks.indexOf(this.selected);
      this.select(this.masks[(i + 1) % this.masks.length]);
    }

    remove(item) {
      const i = this.masks.indexOf(item);
      if (i < 0) return -1;
      this.masks.splice(i, 1);
      if (this.selected === item) this.selected = null;
      this.refresh();
      return i;
    }

    deleteSelected(item = this.selected) {
      if (!item) { notify("Select a mask first (1–9, Tab or click it in the list).", "warn"); return; }
      const i = this.remove(item);
      this.changed = true;
      this.pushUndo(() => { this.masks.splice(i, 0, item); this.select(item); });
      this.select(this.masks[Math.min(i, this.masks.length - 1)] || null);
    }

    toggleCrowd(item = this.selected) {
      if (!item) { notify("Select a mask first.", "warn"); return; }
      item.isCrowd = !item.isCrowd;
      this.changed = true;
      this.pushUndo(() => { item.isCrowd = !item.isCrowd; this.refresh(); });
      this.refresh();
    }

    pushUndo(fn) {
      this.undoStack.push(fn);
      if (this.undoStack.length > 50) this.undoStack.shift();
    }

    undo() {
      const fn = this.undoStack.pop();
      if (fn) fn(); else notify("Nothing to undo.");
    }

    layerStyle(item) {
      return item === this.selected ? {fillAlpha: 115, edgeAlpha: 255} : {fillAlpha: 80, edgeAlpha: 230};
    }

    // redraw the layers and (unless told not to) the list
    refresh(list = true) {
      if (!this.mounted) return;
      viewer.layers = this.masks.map((m) => {
        const style = this.layerStyle(m);
        if (m.layer && (m.layer.style.fillAlpha !== style.fillAlpha)) m.layer = null; // selection changed
        const layer = m.getLayer(style, this.stroke?.target === m);
        if (layer) layer.alpha = !this.selected || m === this.selected ? 1 : 0.6;
        return layer;
      });
      if (this.working?.layer) viewer.layers.push(this.working.layer);
      viewer.redraw();
      body.dataset.maskCount = String(this.masks.length);
      body.dataset.working = this.working ? "1" : "0";
      $("keep-mask").disabled = !this.working;
      $("working-info").textContent = this.working
        ? `Working mask: ${this.working.area} px${this.working.area ? "" : " (empty)"} · score ${this.working.score.toFixed(2)}`
        : this.points.length ? "Segmenting…" : "Click the image to add a mask.";
      if (list) this.renderList();
    }

    renderList() {
      const list = $("mask-list");
      if (!this.masks.length) {
        list.replaceChildren(DE.el("li", {class: "empty-list",
          text: "No masks. Click an object to add one, or press N if the phrase is not in the image."}));
        return;
      }
      list.replaceChildren(...this.masks.map((m, i) => {
        const swatch = DE.el("span", {class: "swatch"});
        swatch.style.background = `rgb(${m.color.join(",")})`;
        const name = m.id !== null
          ? `#${m.id}${m.edited ? " (edited)" : ""}${m.score !== null && m.score !== undefined ? ` · ${Number(m.score).toFixed(2)}` : ""}`
          : `new (${m.tool})`;
        const crowd = actionButtonSmall(m.isCrowd ? "crowd ✓" : "crowd", "crowd on / off (C)", () => this.toggleCrowd(m));
        crowd.classList.toggle("on", m.isCrowd);
        const del = actionButtonSmall("✕", "delete (Del)", () => this.deleteSelected(m));
        const item = DE.el("li", {class: m === this.selected ? "selected" : "", "data-mask": m.id ?? "new",
          onclick: () => this.select(m)}, [swatch, DE.el("span", {class: "name", text: `${i + 1}. ${name}`}), crowd, del]);
        return item;
      }));
    }

    // -- the verdict
    submit(label) {
      if (label === "not_present") { submit("not_present", []); return; }
      if (this.working && this.working.area > 0) {
        notify("Keep (Enter) or drop (Esc) the working mask first.", "warn");
        return;
      }
      const masks = [];
      for (const m of this.masks) {
        if (m.edited && !m.area) continue; // erased to nothing
        if (m.id !== null && !m.edited) masks.push({mask_id: m.id, is_crowd: m.isCrowd, tool: "existing"});
        else masks.push({rle: RLE.encode(m.bits, this.h, this.w), is_crowd: m.isCrowd, tool: m.tool});
      }
      if (!masks.length) {
        notify("There are no masks to submit: add one, or press N if the phrase is not in the image.", "warn");
        return;
      }
      submit("corrected", masks);
    }
  }

  function actionButtonSmall(text, title, onClick) {
    const node = DE.el("button", {type: "button", text, title});
    node.addEventListener("mousedown", (e) => e.preventDefault());
    node.addEventListener("click", (e) => { e.stopPropagation(); node.blur(); onClick(); });
    return node;
  }

  function makeMode(entry) {
    switch (entry.task.kind) {
      case "verify_mask": return verifyMode(entry);
      case "check_exhaustivity": return exhaustivityMode(entry);
      case "correct": return new CorrectMode(entry);
      default: throw new Error(`unknown task kind ${entry.task.kind}`);
    }
  }

  // ============================================================ queue controller
  // An entry is one leased task: {task, img, imgError, startedAt, clock, mode, comment, error}.
  const Q = {
    current: null, prefetched: null, prefetching: null, advancing: null,
    backlog: [], // refused verdicts (422): shown again before new tasks
    parked: new Set(), // skipped tasks, held until the next task is leased so it is not the same one
    outbox: new Map(), // task id → {entry, body, attempts}: verdicts not yet stored
    kinds: null, done: 0, pollTimer: null, lastError: null, stopped: false,
    empty: null, // the last empty answer of /tasks/next: {message, blocked, waiting}
  };

  function loadImage(url) {
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.decoding = "async";
      img.onload = () => (img.decode ? img.decode() : Promise.resolve()).catch(() => {}).then(() => resolve(img));
      img.onerror = () => reject(new Error("the image could not be loaded"));
      img.src = url;
    });
  }

  async function lease() {
    const task = await DE.api("POST", "/tasks/next", Q.kinds ? {kinds: Q.kinds} : {});
    if (!task || task.id === undefined || task.id === null) { // nothing for us: the answer says why
      Q.empty = task;
      return null;
    }
    const entry = {task, img: null, imgError: null};
    try { entry.img = await loadImage(task.image.url); } catch (err) { entry.imgError = err.message; }
    return entry;
  }

  // Lease the next task in the background (at most one held in reserve).
  function prefetch() {
    if (Q.prefetched) return Promise.resolve(Q.prefetched);
    if (Q.prefetching) return Q.prefetching;
    if (Q.stopped) return Promise.resolve(null);
    const promise = lease().then((entry) => {
      Q.prefetching = null;
      Q.lastError = null;
      if (entry && Q.stopped) { release(entry.task.id, true); return null; }
      if (entry && Q.kinds && !Q.kinds.includes(entry.task.kind)) { // asked before the choice changed
        release(entry.task.id);
        return prefetch();
      }
      Q.prefetched = entry;
      return entry;
    }, (err) => {
      Q.prefetching = null;
      Q.lastError = err;
      return null;
    });
    Q.prefetching = promise;
    return promise;
  }

  async function takeNext() {
    if (Q.backlog.length) return Q.backlog.shift();
    if (!Q.prefetched) await prefetch();
    const entry = Q.prefetched;
    Q.prefetched = null;
    return entry;
  }

  function advance() {
    if (Q.advancing) return Q.advancing;
    Q.advancing = (async () => {
      closeCurrent();
      setState("busy");
      clearTimeout(Q.pollTimer);
      if (!Q.prefetched && !Q.backlog.length) stageMessage("Loading the next task…");
      const entry = await takeNext();
      if (Q.stopped) return;
      if (entry) show(entry); else showEmpty();
    })().finally(() => { Q.advancing = null; });
    return Q.advancing;
  }

  function closeCurrent() {
    const entry = Q.current;
    if (!entry) return;
    entry.mode.unmount();
    entry.comment = $("comment").value;
    Q.current = null;
    viewer.clear();
    stageMessage("");
  }

  function show(entry) {
    const t = entry.task;
    Q.current = entry;
    entry.startedAt = entry.startedAt || new Date().toISOString();
    entry.clock = entry.clock || new ActiveClock();
    entry.clock.start();
    body.dataset.taskId = String(t.id);
    body.dataset.taskKind = t.kind;
    $("kind-badge").textContent = KIND_NAMES[t.kind] || t.kind;
    $("task-no").textContent = `task ${t.id}`;
    $("phrase").textContent = t.phrase ?? "";
    $("caption").textContent = t.caption ?? "";
    $("reason").textContent = t.reason ? `Why: ${t.reason}` : "";
    $("comment").value = entry.comment || "";
    stageMessage("");
    renderEmpty(null);
    if (entry.img) viewer.setImage(entry.img, t.image.width, t.image.height);
    else { viewer.clear(); stageMessage(`Image unavailable (${entry.imgError}). Skip this task with K.`, true); }
    try {
      entry.mode = entry.mode || makeMode(entry);
    } catch (err) {
      notify(`This task cannot be shown: ${err.message}`, "error");
      entry.mode = {question: () => [], actions: [], keys: {}, help: [], mount() {}, unmount() {}};
    }
    $("question").replaceChildren(...entry.mode.question());
    $("actions").replaceChildren(...entry.mode.actions.map(([label, key, cls, fn]) => actionButton(label, key, cls, fn)));
    renderHelp(entry.mode.help);
    entry.mode.mount();
    if (entry.error) notify(`Refused earlier: ${entry.error}`, "error");
    setState("ready");
    prefetch();
  }

  function showEmpty() {
    delete body.dataset.taskId;
    delete body.dataset.taskKind;
    for (const id of ["kind-badge", "task-no", "phrase", "caption", "reason"]) $(id).textContent = "";
    $("question").replaceChildren();
    $("actions").replaceChildren();
    renderHelp([]);
    viewer.clear();
    const err = Q.lastError;
    if (err && [400, 403, 404, 422].includes(err.status)) { // asking again would not help
      renderEmpty(null);
      setState("error");
      stageMessage(`The queue refused: ${err.message}`, true);
      return;
    }
    if (err && err.status === 409 && err.code === "too_many_leases") { // other tabs hold this person's tasks
      renderEmpty(null);
      stageMessage(`${err.message} (in your other tabs or windows). Checking again every 10 s.`, true);
      setState("empty");
      clearTimeout(Q.pollTimer);
      Q.pollTimer = setTimeout(poll, POLL_MS);
      return;
    }
    const info = err ? null : Q.empty;
    stageMessage(err ? "Cannot reach the server; trying again every 10 s."
      : `${info?.message || "No tasks right now."} Checking again every 10 s.`, !!err);
    renderEmpty(info);
    setState("empty");
    clearTimeout(Q.pollTimer);
    Q.pollTimer = setTimeout(poll, POLL_MS);
  }

  async function poll() {
    if (Q.current || Q.advancing || Q.stopped) return;
    if (document.hidden) { // a hidden tab leases nothing; it asks again when shown
      Q.pollTimer = setTimeout(poll, POLL_MS);
      return;
    }
    if (Q.backlog.length || await prefetch()) advance();
    else if (!Q.current && !Q.advancing) showEmpty();
  }

  // What the empty answer says in lists: open tasks that are not for this person (and why), and kinds
  // with work waiting — those the person may take get a button that asks for them too.
  function renderEmpty(info) {
    const count = (n, capped) => `${n}${capped ? "+" : ""}`;
    const blocked = info?.blocked || [], waiting = info?.waiting || [];
    $("blocked-list").replaceChildren(...blocked.map((b) => DE.el("li", {"data-kind": b.kind, "data-code": b.code}, [
      DE.el("span", {class: "count", text: `${count(b.open, b.capped)} ${KIND_NAMES[b.kind] || b.kind}`}),
      DE.el("span", {class: "why", text: b.reason}),
    ])));
    $("waiting-list").replaceChildren(...waiting.map((w) => {
      const item = DE.el("li", {"data-kind": w.kind, "data-assigned": w.assigned ? "1" : "0"}, [
        DE.el("span", {class: "count", text: `${count(w.open, w.capped)} ${KIND_NAMES[w.kind] || w.kind}`})]);
      if (w.assigned && (Q.allowed || []).includes(w.kind)) {
        item.append(DE.el("button", {type: "button", class: "ask-kind", text: "Add this kind",
          onclick: () => chooseKinds([...Q.kinds, w.kind])}));
      } else {
        item.append(DE.el("span", {class: "why", text: "not assigned to you (an admin can assign it)"}));
      }
      return item;
    }));
    $("blocked-box").hidden = !blocked.length;
    $("waiting-box").hidden = !waiting.length;
    $("empty-info").hidden = !info || (!blocked.length && !waiting.length);
  }

  // ------------------------------------------------------------ task kinds
  function kindsKey() { return `dataengine.queue.kinds.${me?.username || ""}`; }

  // The kinds this person may take, as checkboxes; the last choice (localStorage) or all of them.
  function setupKinds() {
    const allowed = Array.isArray(me.allowed_kinds) ? me.allowed_kinds : Object.keys(KIND_NAMES);
    let saved = null;
    try { saved = JSON.parse(localStorage.getItem(kindsKey()) || "null"); } catch (err) { saved = null; }
    const chosen = (Array.isArray(saved) ? saved : allowed).filter((k) => allowed.includes(k));
    Q.allowed = allowed;
    Q.kinds = chosen.length ? chosen : allowed;
    body.dataset.kinds = Q.kinds.join(",");
    $("kind-choices").replaceChildren(...allowed.map((kind) => {
      const input = DE.el("input", {type: "checkbox", value: kind, id: `kind-${kind}`});
      input.checked = Q.kinds.includes(kind);
      input.disabled = allowed.length === 1;
      input.addEventListener("change", () => {
        const picked = [...document.querySelectorAll("#kind-choices input:checked")].map((n) => n.value);
        if (!picked.length) { input.checked = true; notify("Choose at least one task kind.", "warn"); return; }
        chooseKinds(picked);
      });
      return DE.el("label", {for: `kind-${kind}`}, [input, DE.el("span", {text: KIND_NAMES[kind] || kind})]);
    }));
    $("kinds").hidden = !allowed.length;
  }

  // Ask for these kinds from now on: remembered, a reserve task of another kind is given back, and an
  // empty page asks again at once. The task on screen stays (judge it or skip it).
  function chooseKinds(kinds) {
    Q.kinds = Q.allowed.filter((k) => kinds.includes(k));
    for (const node of document.querySelectorAll("#kind-choices input")) node.checked = Q.kinds.includes(node.value);
    body.dataset.kinds = Q.kinds.join(",");
    try { localStorage.setItem(kindsKey(), JSON.stringify(Q.kinds)); } catch (err) { /* private mode: not kept */ }
    const reserve = Q.prefetched;
    if (reserve && !Q.kinds.includes(reserve.task.kind)) {
      Q.prefetched = null;
      release(reserve.task.id);
      if (Q.current) prefetch();
    }
    if (!Q.current && !Q.advancing && ["empty", "error"].includes(body.dataset.state)) {
      clearTimeout(Q.pollTimer);
      Q.lastError = null;
      advance();
    }
  }

  function renderHelp(keys) {
    $("help-keys").replaceChildren(...[...keys, ...COMMON_HELP].flatMap(([key, text]) =>
      [DE.el("dt", {}, [DE.el("kbd", {text: key})]), DE.el("dd", {text})]));
  }

  // ------------------------------------------------------------ verdicts
  function submit(label, masks = []) {
    const entry = Q.current;
    if (!entry || body.dataset.state !== "ready") return;
    if (!entry.img) { notify("The image could not be loaded: skip this task (K).", "warn"); return; }
    const comment = $("comment").value.trim();
    const verdict = {client_id: DE.uuid(), label, active_ms: entry.clock.stop(), started_at: entry.startedAt, masks};
    if (comment) verdict.comment = comment;
    entry.error = null;
    const item = {entry, body: verdict, attempts: 0};
    Q.outbox.set(entry.task.id, item);
    Q.done++;
    updateCounters();
    send(item);
    advance();
  }

  // Send a verdict until the server answers; network errors and 5xx retry with the same client_id.
  async function send(item) {
    const id = item.entry.task.id;
    for (;;) {
      try {
        await DE.api("POST", `/tasks/${id}/verdict`, item.body);
        Q.outbox.delete(id);
        updateCounters();
        // the queue was asked while this verdict was on its way: ask again now that it counts (it may
        // have made a task, e.g. the correction after "instances missing")
        if (body.dataset.state === "empty") { clearTimeout(Q.pollTimer); poll(); }
        return;
      } catch (err) {
        if (err.message === "not signed in") return; // on the way to the log-in page
        if (err.status === 409 && err.code === "decision_conflict") {
          // stored, but not applied: someone decided this item differently in another task
          Q.outbox.delete(id);
          updateCounters();
          notify(`Task ${id}: ${err.message}`, "warn");
          return;
        }
        if (!err.status || err.status >= 500 || err.status === 429) {
          item.attempts++;
          updateCounters();
          await sleep(Math.min(RETRY_MAX_MS, 500 * 2 ** Math.min(item.attempts - 1, 5)));
          continue;
        }
        Q.outbox.delete(id);
        Q.done--;
        updateCounters();
        if (err.status === 422) {
          item.entry.error = err.message;
          Q.backlog.push(item.entry);
          notify(`Task ${id} was refused (${err.message}); it comes back next.`, "error");
          if (!Q.current && !Q.advancing) advance();
        } else {
          notify(`Task ${id} was not saved: ${err.message}`, "error");
        }
        return;
      }
    }
  }

  function updateCounters() {
    body.dataset.pending = String(Q.outbox.size);
    const pending = $("pending");
    const retrying = [...Q.outbox.values()].some((i) => i.attempts > 0);
    pending.hidden = !retrying;
    pending.textContent = retrying ? `${Q.outbox.size} verdict(s) not saved yet: retrying…` : "";
    $("session-count").textContent = Q.done ? `${Q.done} done this session` : "";
  }

  // ------------------------------------------------------------ skip, leases
  async function skip() {
    const entry = Q.current;
    if (!entry || body.dataset.state !== "ready") return;
    Q.parked.add(entry);
    await advance();
    if (Q.prefetching) await Q.prefetching; // lease the next task before this one goes back
    Q.parked.delete(entry);
    await release(entry.task.id, false, true);
  }

  // skip: the server remembers it and never offers this task to this user again
  async function release(id, keepalive = false, skip = false) {
    try {
      await DE.api("POST", `/tasks/${id}/release`, skip ? {skip: true} : undefined, {allow: [409], keepalive});
    } catch (err) { /* the lease runs out by itself */ }
  }

  function heldEntries() {
    return [Q.current, Q.prefetched, ...Q.backlog, ...Q.parked].filter(Boolean);
  }

  // Renew every lease held, unless the user has been away so long that the tasks should go back.
  function heartbeatAll() {
    if (performance.now() - lastInputAt > IDLE_HOLD_MS) return;
    for (const entry of heldEntries()) {
      DE.api("POST", `/tasks/${entry.task.id}/heartbeat`, undefined).then((out) => {
        entry.task.lease_expires_at = out.lease_expires_at;
      }, (err) => { if (err.status === 409) lost(entry); });
    }
  }

  // The lease on ``entry`` is gone (expired and taken, or done elsewhere): drop it.
  function lost(entry) {
    if (Q.current === entry) {
      notify("Your lease on this task ran out; it was dropped. Here is the next one.", "warn");
      advance();
    } else if (Q.prefetched === entry) {
      Q.prefetched = null;
      if (Q.current) prefetch();
    } else {
      Q.backlog = Q.backlog.filter((e) => e !== entry);
      Q.parked.delete(entry);
    }
  }

  // ============================================================ input
  function onKeyDown(e) {
    if (e.key === " " && !isTyping(e.target)) {
      e.preventDefault();
      viewer.setSpace(true);
      return;
    }
    if (isTyping(e.target)) {
      if (e.key === "Escape") e.target.blur();
      return;
    }
    const entry = Q.current;
    if ((e.ctrlKey || e.metaKey) && !e.altKey && e.key.toLowerCase() === "z") {
      if (entry?.mode.undo && body.dataset.state === "ready") { e.preventDefault(); entry.mode.undo(); }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    if (key === "?") { e.preventDefault(); $("help").open = !$("help").open; return; }
    if (!entry || body.dataset.state !== "ready") return;
    const zoom = (factor) => () => viewer.zoomAt(viewer.cssW / 2, viewer.cssH / 2, factor);
    const common = {k: skip, f: () => viewer.fit(), v: () => { viewer.showMasks = !viewer.showMasks; viewer.redraw(); },
      "=": zoom(1.25), "+": zoom(1.25), "-": zoom(0.8)};
    const handler = entry.mode.keys[key] || common[key];
    if (!handler) return;
    e.preventDefault();
    if (e.repeat && !["[", "]"].includes(key)) return; // a held key must not judge task after task
    handler(e);
  }

  function onActivity() {
    lastInputAt = performance.now();
    Q.current?.clock?.input(lastInputAt);
  }

  // Give every unjudged lease back (the page is going away, or the user logs out).
  function releaseAll() {
    Q.stopped = true;
    clearTimeout(Q.pollTimer);
    const held = heldEntries();
    Q.prefetched = null; Q.backlog = []; Q.parked.clear();
    return Promise.allSettled(held.map((entry) => fetch(`/api/v1/tasks/${entry.task.id}/release`, {
      method: "POST", keepalive: true, credentials: "same-origin", headers: {"X-CSRF-Token": me?.csrf_token || ""},
    })));
  }

  function wireStatic() {
    $("skip").addEventListener("mousedown", (e) => e.preventDefault());
    $("skip").addEventListener("click", () => skip());
    for (const node of document.querySelectorAll(".tools button")) {
      node.addEventListener("mousedown", (e) => e.preventDefault());
      node.addEventListener("click", () => Q.current?.mode.setTool?.(node.dataset.tool));
    }
    $("keep-mask").addEventListener("mousedown", (e) => e.preventDefault());
    $("keep-mask").addEventListener("click", () => Q.current?.mode.keep?.());
    $("brush-size").addEventListener("input", (e) => {
      brushPref = Number(e.target.value);
      $("brush-size-value").textContent = `${brushPref} px`;
      viewer.redraw();
    });
    window.addEventListener("keydown", onKeyDown, true);
    window.addEventListener("keyup", (e) => { if (e.key === " ") viewer.setSpace(false); });
    window.addEventListener("blur", () => viewer.setSpace(false));
    for (const type of ["keydown", "pointerdown", "pointermove", "wheel"]) {
      window.addEventListener(type, onActivity, {capture: true, passive: true});
    }
    document.addEventListener("visibilitychange", () => {
      Q.current?.clock?.visibility(!document.hidden);
      if (document.hidden) return;
      heartbeatAll(); // timers are throttled in hidden tabs
      if (body.dataset.state === "empty") { clearTimeout(Q.pollTimer); poll(); }
    });
    window.addEventListener("beforeunload", (e) => {
      if (Q.outbox.size || Q.current?.mode?.changed) { e.preventDefault(); e.returnValue = ""; }
    });
    window.addEventListener("pagehide", () => { releaseAll(); }); // nobody waits for them to expire
    window.addEventListener("pageshow", (e) => { if (e.persisted) location.reload(); });
  }

  document.addEventListener("DOMContentLoaded", async () => {
    viewer = new Viewer($("stage"), $("canvas"));
    wireStatic();
    updateCounters();
    try {
      me = await DE.nav("/queue");
    } catch (err) {
      if (err.message !== "not signed in") { setState("error"); stageMessage(`Cannot load the page: ${err.message}`, true); }
      return;
    }
    heartbeatMs = Math.max(5, Number(me.heartbeat_s) || DEFAULT_HEARTBEAT_S) * 1000;
    DE.onLogout(releaseAll);
    setupKinds();
    setInterval(heartbeatAll, heartbeatMs);
    advance();
  });
})();
