// Video task kind correct: keep, cut, mark crowd or delete the pair's masklets, and add or fix objects
// with tracker clicks. A click on the frame shown (left: on the object, Shift or right click: not on
// it) sends every point of the working object on that frame to the tracker (POST track, run on a
// worker): its mask on the clicked frame comes first, then the propagated frames as they arrive (the
// timeline's working row fills in). Enter keeps the working object (fixing the selected object
// replaces it); [ and ] cut the selected object to start / end at the frame shown; C crowd; Del
// deletes. The verdict's masks: objects.js.
//
// On <body> while shown: data-mask-count (objects kept), data-working ("1" while a working object has
// points), data-track-state and data-track-frames (its tracker request: state, frames with a mask),
// data-track-first ("1" once the clicked frame's mask is there), data-track-arrived (frames arrived,
// with or without a mask).

import {WORKING_COLOR} from "../../layers.js";
import {labelActions, labelHelp} from "../../labels.js";
import {byId, el, revealNew, smallButton, term} from "../../ui.js";
import {describeFrames, extent, maskletItem, trackItem, verdictMasks} from "../objects.js";
import {cutIn, cutOut, keeps, runs} from "../spans.js";
import {PLAYER_HELP, REPEATING, VideoStage, maskletColor} from "../stage.js";
import {follow, startTrack} from "../track.js";

export const title = "Correct masklets";

const HINTS = {
  corrected: {tone: "ok", help: "submit the masklets", masks: true},
  not_present: {tone: "bad", help: "phrase not present (no masklets)"},
};
const UNDO_DEPTH = 50;
const body = document.body;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function create(entry, page) { return new VideoCorrectMode(entry, page); }

class VideoCorrectMode {
  constructor(entry, page) {
    Object.assign(this, {entry, page, task: entry.task, viewer: page.viewer});
    const masklets = this.task.masklets || [];
    this.objects = masklets.map((m, i) => maskletItem(m, maskletColor(m, i)));
    this.colorIndex = Math.max(masklets.length, ...masklets.map((m) => (m.color_index ?? -1) + 1));
    this.selected = null;
    this.working = null; // {frame, points, maskId, replaces, session}
    this.undoStack = [];
    this.changed = false;
    this.mounted = false;
    this.stage = new VideoStage(entry, page, {objects: () => this.drawables(), rows: () => this.rows()});
    this.repeating = REPEATING;
    const own = {
      Enter: () => this.keep(), Escape: () => this.escape(), Delete: () => this.deleteSelected(),
      Backspace: () => this.deleteSelected(), c: () => this.toggleCrowd(), "[": () => this.cut("in"),
      "]": () => this.cut("out"), Tab: () => this.cycle(),
    };
    for (let i = 1; i <= 9; i++) own[String(i)] = () => this.select(this.objects[i - 1] || null);
    Object.assign(own, this.stage.keys);
    const labels = labelActions(this.task.labels,
      {keys: this.task.keys, reserved: [...page.reserved, ...Object.keys(own)], hints: HINTS});
    this.actions = labels.map((a) => ({...a, run: () => this.submit(a.label)}));
    this.keys = {...own, ...Object.fromEntries(this.actions.flatMap((a) => a.keys.map((k) => [k, a.run])))};
    this.help = [["Click", "a point on the object (tracker)"], ["Shift+click, right click", "a point outside it"],
      ["Enter", "keep the tracked object"], ["Esc", "drop the points / deselect"], ["1–9, Tab", "select an object"],
      ["[ ]", "cut the selected object: start / end here"], ["Del", "delete the selected object"],
      ["C", "crowd on / off"], ["Ctrl+Z", "undo"], ...PLAYER_HELP, ...labelHelp(labels)];
  }

  question() {
    return ["Masklet every ", term(this.task.phrase), ": keep the good ones, cut or delete wrong ones, click missing ones."];
  }

  mount() {
    this.mounted = true;
    byId("editor").hidden = false;
    byId("editor").classList.add("video");
    byId("keep-mask").firstChild.textContent = "Keep object ";
    this.viewer.tool = this;
    this.stage.mount();
    this.refresh();
  }

  unmount() {
    this.mounted = false;
    this.stage.unmount();
    byId("editor").hidden = true;
    byId("editor").classList.remove("video");
    byId("keep-mask").firstChild.textContent = "Keep mask ";
    for (const key of ["maskCount", "working", "trackState", "trackFrames", "trackFirst", "trackArrived"]) delete body.dataset[key];
  }

  // -- what is drawn
  trackObject(session, color, key, style = {fillAlpha: 90, edgeAlpha: 255}) {
    return {key, color, style, alpha: 1, at: (f) => session.frames.get(f) || null};
  }

  drawables() {
    const out = [];
    for (const obj of this.objects) {
      const frame = this.stage.shownFrame();
      if (!keeps(obj.cut, extent(obj), frame) || obj === this.working?.replaces) continue;
      const style = obj === this.selected ? {fillAlpha: 115, edgeAlpha: 255} : {fillAlpha: 80, edgeAlpha: 230};
      const item = obj.kind === "masklet" ? this.stage.maskletObject(obj.masklet, {color: obj.color, style})
        : this.trackObject(obj.session, obj.color, obj.key, style);
      item.alpha = !this.selected || obj === this.selected ? 1 : 0.6;
      out.push(item);
    }
    const session = this.working?.session;
    if (session) out.push(this.trackObject(session, WORKING_COLOR, `w${session.id}`, {fillAlpha: 120, edgeAlpha: 255}));
    return out;
  }

  rows() {
    const rows = this.objects.map((obj, i) => ({key: obj.key, label: `${i + 1}. ${describeFrames(obj)}`, color: obj.color,
      spans: obj.kind === "masklet" ? [extent(obj)] : runs(obj.session.present()), extent: extent(obj), cut: obj.cut,
      selected: obj === this.selected}));
    const session = this.working?.session;
    if (session) rows.push({key: "working", label: "working object", color: WORKING_COLOR, spans: runs(session.present()),
      extent: null, cut: null, working: true});
    return rows;
  }

  // viewer hooks: a click adds a point; the working object's points are drawn on their frame
  down(p, e) {
    if (!this.viewer.inImage(p)) return;
    this.addPoint(p.x, p.y, e.button === 2 || e.shiftKey ? 0 : 1);
  }

  draw(ctx, v) {
    if (!this.working || this.working.frame !== this.stage.shownFrame()) return;
    for (const [x, y, label] of this.working.points) {
      const s = v.toScreen(x, y);
      ctx.beginPath();
      ctx.arc(s.x, s.y, 6, 0, 2 * Math.PI);
      ctx.fillStyle = label ? "#2fbf71" : "#f05252";
      ctx.fill();
      ctx.lineWidth = 2; ctx.strokeStyle = "#fff"; ctx.stroke();
    }
  }

  // -- tracker clicks
  addPoint(x, y, label) {
    const frame = this.stage.shownFrame(); // the frame the person sees (while playing it may trail the slider)
    this.stage.player?.pause();
    const before = this.working;
    if (!this.working || this.working.frame !== frame) { // points are per frame: a new prompt here
      const fixes = this.selected;
      this.working = {frame, points: [], maskId: fixes?.kind === "masklet" ? fixes.id : null, replaces: fixes, session: null};
    }
    const w = this.working;
    w.points = [...w.points, [Math.round(x * 10) / 10, Math.round(y * 10) / 10, label]];
    this.pushUndo(() => {
      if (before === w) { w.points = w.points.slice(0, -1); if (w.points.length) this.track(); else this.dropWorking(); return; }
      this.working = before;
      this.refresh();
    });
    this.track();
  }

  async track() {
    const w = this.working;
    const points = w.points;
    w.session = null;
    this.refresh();
    body.dataset.trackState = "sending";
    let session;
    try {
      session = await startTrack(this.page.api, this.task.id, {frameIndex: w.frame, points, maskId: w.maskId});
    } catch (err) {
      if (this.working !== w || w.points !== points || !this.mounted) return;
      if (err.status === 409) { this.page.lost(this.entry); return; }
      body.dataset.trackState = "failed";
      this.page.notify(`The tracker request failed: ${err.message}`, "error");
      return;
    }
    if (this.working !== w || w.points !== points || !this.mounted) return; // a newer click took over
    w.session = session;
    this.followSession(session);
    this.refresh();
  }

  followSession(session) {
    const wanted = () => this.mounted && (this.working?.session === session || this.objects.some((o) => o.session === session));
    follow(session, {api: this.page.api, sleep, stale: () => !wanted(), onFrames: (s, added) => {
      if (s.state === "failed" && this.working?.session === s) this.page.notify(`Tracking failed: ${s.error}`, "error");
      if (added.includes(this.stage.shownFrame())) this.stage.drawLayers();
      this.refresh();
    }});
  }

  dropWorking() {
    this.working = null;
    this.refresh();
  }

  /** Keep the working object (it replaces the object it fixes). */
  keep() {
    const w = this.working, s = w?.session;
    if (!s || !s.first) {
      this.page.notify(w ? "Wait for the tracker's mask…" : "Click on an object first.", "warn");
      return;
    }
    if (s.state === "failed" || !s.present().length) {
      this.page.notify("The tracked object has no mask: add a point on the object, or Esc.", "warn");
      return;
    }
    const item = trackItem(s, w.replaces ? w.replaces.color : this.nextColor(), {isCrowd: !!w.replaces?.isCrowd});
    const at = w.replaces ? this.objects.indexOf(w.replaces) : -1;
    if (at >= 0) this.objects.splice(at, 1, item); else this.objects.push(item);
    this.working = null;
    this.changed = true;
    this.pushUndo(() => {
      const i = this.objects.indexOf(item);
      if (at >= 0) this.objects.splice(i, 1, w.replaces); else this.objects.splice(i, 1);
      this.working = w;
      this.select(w.replaces || null);
    });
    this.select(item);
  }

  escape() {
    if (this.working) this.dropWorking(); else this.select(null);
  }

  // -- the objects
  nextColor() { return maskletColor({}, this.colorIndex++); }

  select(obj) {
    this.selected = obj;
    this.refresh();
  }

  cycle() {
    if (!this.objects.length) return;
    this.select(this.objects[(this.objects.indexOf(this.selected) + 1) % this.objects.length]);
  }

  deleteSelected(obj = this.selected) {
    if (!obj) { this.page.notify("Select an object first (1–9, Tab or click it in the list).", "warn"); return; }
    const i = this.objects.indexOf(obj);
    this.objects.splice(i, 1);
    this.changed = true;
    this.pushUndo(() => { this.objects.splice(i, 0, obj); this.select(obj); });
    this.select(this.objects[Math.min(i, this.objects.length - 1)] || null);
  }

  toggleCrowd(obj = this.selected) {
    if (!obj) { this.page.notify("Select an object first.", "warn"); return; }
    obj.isCrowd = !obj.isCrowd;
    this.changed = true;
    this.pushUndo(() => { obj.isCrowd = !obj.isCrowd; this.refresh(); });
    this.refresh();
  }

  /** "[" (in) or "]" (out): the selected object starts or ends at the frame shown. */
  cut(side, obj = this.selected) {
    if (!obj) { this.page.notify("Select an object to cut first.", "warn"); return; }
    const e = extent(obj);
    if (!e) return;
    const before = obj.cut;
    obj.cut = (side === "in" ? cutIn : cutOut)(obj.cut, e, this.stage.frame);
    this.changed = true;
    this.pushUndo(() => { obj.cut = before; this.refresh(); });
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

  refresh(list = true) {
    if (!this.mounted) return;
    this.stage.refresh();
    const s = this.working?.session;
    body.dataset.maskCount = String(this.objects.length);
    body.dataset.working = this.working ? "1" : "0";
    body.dataset.trackState = s ? s.state : this.working ? body.dataset.trackState || "sending" : "";
    body.dataset.trackFrames = String(s ? s.present().length : 0);
    body.dataset.trackFirst = s?.first ? "1" : "0";
    body.dataset.trackArrived = String(s ? s.frames.size : 0);
    byId("keep-mask").disabled = !s?.first;
    byId("working-info").textContent = this.working
      ? `Working object, frame ${this.working.frame + 1}: ${s ? s.describe() : "sending…"}`
      : "Click the frame to add an object (select one first to fix it).";
    if (list) this.renderList();
  }

  renderList() {
    if (!this.objects.length) {
      byId("mask-list").replaceChildren(el("li", {class: "empty-list",
        text: "No masklets. Click an object to add one, or press N if the phrase is not in the video."}));
      return;
    }
    const list = byId("mask-list"), before = list.querySelectorAll("li:not(.empty-list)").length;
    list.replaceChildren(...this.objects.map((obj, i) => {
      const swatch = el("span", {class: "swatch"});
      swatch.style.background = `rgb(${obj.color.join(",")})`;
      const name = obj.kind === "masklet" ? `#${obj.id}` : `new (${obj.session.describe()})`;
      const crowd = smallButton(obj.isCrowd ? "crowd ✓" : "crowd", "crowd on / off (C)", () => this.toggleCrowd(obj));
      crowd.classList.toggle("on", obj.isCrowd);
      crowd.setAttribute("aria-pressed", obj.isCrowd ? "true" : "false");
      const del = smallButton("✕", "delete (Del)", () => this.deleteSelected(obj));
      del.setAttribute("aria-label", `delete object ${i + 1}`);
      return el("li", {class: obj === this.selected ? "selected" : "", "data-mask": obj.id ?? "new",
        "data-object": obj.key, onclick: () => this.select(obj)},
      [swatch, el("span", {class: "name", text: `${i + 1}. ${name} · ${describeFrames(obj)}`}), crowd, del]);
    }));
    revealNew(list, before); // a new object: in view, however long the list
  }

  // -- the verdict
  submit(label) {
    if (!HINTS[label]?.masks) { this.page.submit(label, []); return; }
    if (this.working?.points.length) {
      this.page.notify("Keep (Enter) or drop (Esc) the working object first.", "warn");
      return;
    }
    const out = verdictMasks(this.objects);
    if (out.masks) this.page.submit(label, out.masks);
    else this.page.notify(out.wait || out.error, "warn");
  }
}
