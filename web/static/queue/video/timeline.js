// The video bar under the frame (queue.html #video-bar): play / pause, the frame slider, the frame
// number and time, and the timeline: one row per object with a bar in the object's colour over the
// frames it covers (a masklet: first → last frame; a tracked object: the runs of frames that have
// arrived, so the row fills in while the tracker propagates), the frames cut away dimmed, and the
// playhead. A click or drag on the timeline seeks. spans.js does the arithmetic.
//
//   rows: [{key, label, color [r,g,b], spans [[a, b], …], extent [a, b] | null, cut [a, b] | null,
//           selected, working}]

import {byId, el} from "../ui.js";
import {frameAt, frameLabel, spanBox} from "./spans.js";

const rgb = (c) => `rgb(${c.join(",")})`;

function place(node, box) {
  node.style.left = `${box.left}%`;
  node.style.width = `${box.width}%`;
}

export class Timeline {
  /** n: frames; fps: sample rate (for the time shown); onSeek(i), onToggle(): the player's. */
  constructor({n, fps, onSeek, onToggle}) {
    Object.assign(this, {n, fps, onSeek, onToggle});
    this.bar = byId("video-bar");
    this.slider = byId("video-slider");
    this.play = byId("video-play");
    this.label = byId("video-frame");
    this.track = byId("video-timeline");
    this.head = el("div", {class: "tl-head", "aria-hidden": "true"});
    this.rows = el("div", {class: "tl-rows"});
    this.dragging = false;
    this.listeners = [];
  }

  mount() {
    this.bar.hidden = false;
    this.slider.min = "0";
    this.slider.max = String(this.n - 1);
    this.slider.step = "1";
    this.track.replaceChildren(this.rows, this.head);
    this.on(this.slider, "input", () => this.onSeek(Number(this.slider.value)));
    this.on(this.play, "click", () => { this.play.blur(); this.onToggle(); }); // the keys stay the page's
    this.on(this.track, "pointerdown", (e) => { this.dragging = true; this.track.setPointerCapture(e.pointerId); this.seekAt(e); });
    this.on(this.track, "pointermove", (e) => { if (this.dragging) this.seekAt(e); });
    this.on(this.track, "pointerup", () => { this.dragging = false; });
    this.on(this.track, "pointercancel", () => { this.dragging = false; });
  }

  on(node, type, fn) {
    node.addEventListener(type, fn);
    this.listeners.push([node, type, fn]);
  }

  unmount() {
    for (const [node, type, fn] of this.listeners) node.removeEventListener(type, fn);
    this.listeners = [];
    this.bar.hidden = true;
    this.track.replaceChildren();
    this.label.textContent = "";
  }

  seekAt(e) {
    const r = this.rows.getBoundingClientRect();
    this.onSeek(frameAt(e.clientX - r.left, r.width, this.n));
  }

  /** The playhead, slider and label at frame ``index``; ``playing`` sets the button. */
  setFrame(index, playing) {
    const text = frameLabel(index, this.n, this.fps);
    this.slider.value = String(index);
    this.slider.setAttribute("aria-valuetext", text);
    this.label.textContent = text;
    place(this.head, spanBox([index, index], this.n));
    this.play.textContent = playing ? "❚❚" : "▶";
    this.play.setAttribute("aria-label", playing ? "Pause (Space)" : "Play (Space)");
    this.play.setAttribute("aria-pressed", playing ? "true" : "false");
  }

  /** Draw the objects' rows. */
  render(rows) {
    this.rows.replaceChildren(...rows.map((row) => this.row(row)));
  }

  row({key, label, color, spans, extent, cut, selected = false, working = false}) {
    const node = el("div", {class: `tl-row${selected ? " selected" : ""}${working ? " working" : ""}`,
      "data-object": key, title: label});
    for (const span of spans) {
      const bar = el("div", {class: "tl-bar"});
      bar.style.background = rgb(color);
      place(bar, spanBox(span, this.n));
      node.append(bar);
    }
    if (cut && extent) { // the frames cut away, dimmed
      for (const away of [[extent[0], cut[0] - 1], [cut[1] + 1, extent[1]]]) {
        if (away[1] < away[0]) continue;
        const shade = el("div", {class: "tl-cut"});
        place(shade, spanBox(away, this.n));
        node.append(shade);
      }
    }
    return node;
  }
}
