// Task kind correct: the correction editor. Candidates to keep or delete, new masks by tracker clicks
// (click-to-segment on the server), brush and eraser; the verdict buttons are the task's label words
// (labels.js): the one with ``masks`` in its hint sends the masks, any other sends none.
//
// On <body> while shown: data-mask-count, data-segmenting ("1" while a click-to-segment request
// runs), data-segmented (how many clicks the working mask reflects), data-working ("1" when a
// working mask is shown).

import * as RLE from "../rle.js";
import {MaskItem, PALETTE, WORKING_COLOR, edgeWidth, layerRect, makeLayer, paintLayer, taskMasks} from "../layers.js";
import {labelActions, labelHelp} from "../labels.js";
import {ExemplarTool} from "../exemplar.js";
import {byId, el, revealNew, smallButton, term} from "../ui.js";

export const title = "Correct masks";

// a key (S: submit; C is the crowd toggle), a colour and a help line per word; ``masks``: the word
// that sends the edited masks (a word missing here is shown all the same and sends none)
const HINTS = {
  corrected: {tone: "ok", help: "submit the masks", masks: true},  // its key (s) comes with the task
  not_present: {tone: "bad", help: "phrase not present (no masks)"},
};
const UNDO_DEPTH = 50;
const body = document.body;

export function create(entry, page) { return new CorrectMode(entry, page); }

class CorrectMode {
  constructor(entry, page) {
    this.entry = entry;
    this.page = page;
    this.viewer = page.viewer;
    this.task = entry.task;
    this.h = this.task.image.height;
    this.w = this.task.image.width;
    this.masks = taskMasks(this.task, (text) => page.notify(text, "warn"));
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
    this.exemplar = new ExemplarTool(this);
    const own = {
      p: () => this.setTool("point"), b: () => this.setTool("brush"), e: () => this.setTool("eraser"),
      x: () => this.setTool("exemplar"), Enter: () => this.keep(), Escape: () => this.escape(),
      Delete: () => this.deleteSelected(),
      Backspace: () => this.deleteSelected(), c: () => this.toggleCrowd(), "[": () => this.resizeBrush(1 / 1.25),
      "]": () => this.resizeBrush(1.25), Tab: () => this.cycle(),
    };
    for (let i = 1; i <= 9; i++) own[String(i)] = () => this.select(this.masks[i - 1] || null);
    const labels = labelActions(this.task.labels,
      {keys: this.task.keys, reserved: [...page.reserved, ...Object.keys(own)], hints: HINTS});
    this.actions = labels.map((a) => ({...a, run: () => this.submit(a.label)}));
    this.keys = {...own, ...Object.fromEntries(this.actions.flatMap((a) => a.keys.map((k) => [k, a.run])))};
    this.help = [["Click", "add a point on the object (tracker)"], ["Shift+click, right click", "point outside it"],
      ["Enter", "keep the working mask"], ["Esc", "drop the points / deselect"], ["1–9, Tab", "select a mask"],
      ["Del", "delete the selected mask"], ["C", "crowd on / off"], ["P B E X", "click tool, brush, eraser, exemplars"],
      ["X: drag, Shift+drag", "box a good / a wrong instance (the model adds the like)"],
      ["[ ]", "brush size"], ["Ctrl+Z", "undo"], ...labelHelp(labels)];
  }

  question() {
    return ["Mask every ", term(this.task.phrase), ": keep the good candidates, delete wrong ones, add the missing ones."];
  }

  mount() {
    this.mounted = true;
    byId("editor").hidden = false;
    if (this.page.brush.size === null) this.page.brush.size = Math.max(2, Math.round(Math.min(this.w, this.h) / 30));
    this.syncBrushUI();
    this.setTool(this.tool);
    this.viewer.tool = this;
    this.refresh();
  }

  unmount() {
    this.mounted = false;
    this.seq++; // a click-to-segment answer arriving now is dropped
    this.exemplar.reset();
    this.stroke = null;
    byId("editor").hidden = true;
    for (const key of ["maskCount", "segmenting", "segmented", "working"]) delete body.dataset[key];
  }

  // -- viewer hooks
  down(p, e) {
    if (this.tool === "exemplar") {
      this.exemplar.down(p, e);
    } else if (this.tool === "point") {
      if (!this.viewer.inImage(p)) return;
      this.addPoint(p.x, p.y, e.button === 2 || e.shiftKey ? 0 : 1);
    } else if (e.button === 0) {
      this.startStroke(p);
    }
  }

  move(p) {
    if (this.tool === "exemplar") return this.exemplar.move(p);
    if (this.stroke) {
      this.paint(this.stroke.last, p);
      this.stroke.last = p;
    }
    return this.tool === "brush" || this.tool === "eraser"; // the brush outline follows the pointer
  }

  up(p) { if (this.tool === "exemplar") this.exemplar.up(p); else if (this.stroke) this.endStroke(); }

  draw(ctx, v) {
    this.exemplar.draw(ctx, v);
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
    if ((this.tool === "brush" || this.tool === "eraser") && v.hover) {
      const s = v.toScreen(v.hover.x, v.hover.y);
      const r = Math.max(1, (this.page.brush.size / 2) * v.scale);
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
    this.viewer.redraw();
  }

  /** While a click waits longer than a moment, ask the server whether the wait is the segmenter's first
   * load (GET /models/state) and say so: "Loading the model…" rather than a bare "Segmenting…". */
  watchModelLoad(seq) {
    const watch = {timer: 0};
    const check = async () => {
      let state = null;
      try { state = (await this.page.api("GET", "/models/state")).models?.segmenter?.state; } catch { return; }
      if (seq !== this.seq || !this.mounted || body.dataset.segmenting === "0") return;
      if (state === "loading") {
        body.dataset.segmenting = "loading";
        byId("working-info").textContent = "Loading the click-to-segment model (first use on this server)…";
      }
      if (state !== "ready") watch.timer = setTimeout(check, 1000);
    };
    watch.timer = setTimeout(check, 700);
    return watch;
  }

  async segment() {
    const seq = ++this.seq;
    const points = this.points.slice();
    body.dataset.segmenting = "1";
    byId("working-info").textContent = "Segmenting…";
    const watch = this.watchModelLoad(seq);
    try {
      const out = await this.page.api("POST", `/tasks/${this.task.id}/segment`, {points});
      if (seq !== this.seq || !this.mounted) return;
      const bits = RLE.decode(out.rle);
      const area = RLE.area(bits);
      const layer = makeLayer(bits, this.h, this.w, WORKING_COLOR, layerRect(bits, this.h, this.w),
        {fillAlpha: 120, edgeAlpha: 255});
      this.working = {bits, area, score: out.score, layer};
    } catch (err) {
      if (seq !== this.seq || !this.mounted) return;
      if (err.status === 409) { this.page.lost(this.entry); return; }
      this.page.notify(`Click to segment failed: ${err.message}`, "error");
    } finally {
      clearTimeout(watch.timer);
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
      this.page.notify(this.points.length ? "Wait for the mask…" : "Click on an object first.", "warn");
      return;
    }
    if (this.working.area === 0) {
      this.page.notify("The working mask is empty: add a point on the object.", "warn");
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
    if (this.tool === "exemplar" && this.exemplar.reset()) this.refresh();
    else if (this.points.length || this.working) this.dropWorking();
    else this.select(null);
  }

  // -- brush and eraser
  startStroke(p) {
    let target = this.selected, created = false;
    if (!target) {
      if (this.tool === "eraser") {
        this.page.notify("Select the mask to erase from (1–9 or click it in the list).", "warn");
        return;
      }
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
    const value = this.tool === "brush" ? 1 : 0;
    const dirty = RLE.paintLine(bits, this.h, this.w, a.x, a.y, b.x, b.y, this.page.brush.size / 2, value);
    if (dirty && target.layer) {
      paintLayer(target.layer, bits, this.h, this.w, RLE.clipRect(dirty, this.h, this.w, edgeWidth(this.h, this.w) + 1));
    }
    this.viewer.redraw();
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
    this.viewer.stage.classList.toggle("tool-brush", tool === "brush");
    this.viewer.stage.classList.toggle("tool-eraser", tool === "eraser");
    this.viewer.stage.classList.toggle("tool-exemplar", tool === "exemplar");
    this.refresh(false);
  }

  resizeBrush(factor) {
    const size = this.page.brush.size;
    this.page.brush.size = Math.max(1, Math.min(200, Math.round(size * factor) + (factor > 1 ? 1 : 0)));
    this.syncBrushUI();
    this.viewer.redraw();
  }

  syncBrushUI() {
    byId("brush-size").value = String(this.page.brush.size);
    byId("brush-size-value").textContent = `${this.page.brush.size} px`;
  }

  // -- exemplar candidates (made by exemplar.js)
  addCandidates(items) { this.masks.push(...items); this.changed ||= items.length > 0; this.refresh(); }
  removeItems(items) { for (const item of items) this.remove(item); }

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
    if (!item) { this.page.notify("Select a mask first (1–9, Tab or click it in the list).", "warn"); return; }
    const i = this.remove(item);
    this.changed = true;
    this.pushUndo(() => { this.masks.splice(i, 0, item); this.select(item); });
    this.select(this.masks[Math.min(i, this.masks.length - 1)] || null);
  }

  toggleCrowd(item = this.selected) {
    if (!item) { this.page.notify("Select a mask first.", "warn"); return; }
    item.isCrowd = !item.isCrowd;
    this.changed = true;
    this.pushUndo(() => { item.isCrowd = !item.isCrowd; this.refresh(); });
    this.refresh();
  }

  pushUndo(fn) {
    this.undoStack.push(fn);
    if (this.undoStack.length > UNDO_DEPTH) this.undoStack.shift();
  }

  undo() {
    const fn = this.undoStack.pop();
    if (fn) fn(); else this.page.notify("Nothing to undo.");
  }

  layerStyle(item) {
    return item === this.selected ? {fillAlpha: 115, edgeAlpha: 255} : {fillAlpha: 80, edgeAlpha: 230};
  }

  /** Redraw the layers and (unless told not to) the list. */
  refresh(list = true) {
    if (!this.mounted) return;
    const layers = this.masks.map((m) => {
      const style = this.layerStyle(m);
      if (m.layer && (m.layer.style.fillAlpha !== style.fillAlpha)) m.layer = null; // selection changed
      const layer = m.getLayer(style, this.stroke?.target === m);
      if (layer) layer.alpha = !this.selected || m === this.selected ? 1 : 0.6;
      return layer;
    });
    if (this.working?.layer) layers.push(this.working.layer);
    this.viewer.layers = layers;
    this.viewer.redraw();
    body.dataset.maskCount = String(this.masks.length);
    body.dataset.working = this.working ? "1" : "0";
    byId("keep-mask").disabled = !this.working;
    byId("working-info").textContent = this.working
      ? `Working mask: ${this.working.area} px${this.working.area ? "" : " (empty)"} · score ${this.working.score.toFixed(2)}`
      : this.tool === "exemplar" ? this.exemplar.describe()
        : this.points.length ? "Segmenting…" : "Click the image to add a mask.";
    if (list) this.renderList();
  }

  renderList() {
    const list = byId("mask-list");
    if (!this.masks.length) {
      list.replaceChildren(el("li", {class: "empty-list",
        text: "No masks. Click an object to add one, or press N if the phrase is not in the image."}));
      return;
    }
    const before = list.querySelectorAll("li:not(.empty-list)").length;
    list.replaceChildren(...this.masks.map((m, i) => {
      const swatch = el("span", {class: "swatch"});
      swatch.style.background = `rgb(${m.color.join(",")})`;
      const score = m.score !== null && m.score !== undefined ? ` · ${Number(m.score).toFixed(2)}` : "";
      const name = m.id !== null ? `#${m.id}${m.edited ? " (edited)" : ""}${score}` : `new (${m.tool})`;
      const crowd = smallButton(m.isCrowd ? "crowd ✓" : "crowd", "crowd on / off (C)", () => this.toggleCrowd(m));
      crowd.classList.toggle("on", m.isCrowd);
      const del = smallButton("✕", "delete (Del)", () => this.deleteSelected(m));
      return el("li", {class: m === this.selected ? "selected" : "", "data-mask": m.id ?? "new",
        onclick: () => this.select(m)}, [swatch, el("span", {class: "name", text: `${i + 1}. ${name}`}), crowd, del]);
    }));
    revealNew(list, before); // a new mask: in view, however long the list
  }

  // -- the verdict
  submit(label) {
    if (!HINTS[label]?.masks) { this.page.submit(label, []); return; }
    if (this.working && this.working.area > 0) {
      this.page.notify("Keep (Enter) or drop (Esc) the working mask first.", "warn");
      return;
    }
    const masks = [];
    for (const m of this.masks) {
      if (m.edited && !m.area) continue; // erased to nothing
      if (m.id !== null && !m.edited) masks.push({mask_id: m.id, is_crowd: m.isCrowd, tool: "existing"});
      else masks.push({rle: RLE.encode(m.bits, this.h, this.w), is_crowd: m.isCrowd, tool: m.tool,
        ...(m.exemplarId ? {exemplar_id: m.exemplarId} : {})});
    }
    if (!masks.length) {
      this.page.notify("There are no masks to submit: add one, or press N if the phrase is not in the image.", "warn");
      return;
    }
    this.page.submit(label, masks);
  }
}
