// What every video task kind shares: the player (player.js) in the page's viewer, the video bar with
// its timeline (timeline.js), the task's masklets read frame by frame (overlay.js) and drawn on the
// frame shown in their colours, and the player's keys. A kind gives the objects to draw and the
// timeline's rows (functions, asked again on every refresh).
//
//   keys   ← → one frame, Shift+← → ten frames, Space play / pause, Home / End first / last frame
//          (held arrows repeat: ``repeating``).

import {PALETTE} from "../layers.js";
import {frameUrl} from "./frames.js";
import {startFrame} from "./media.js";
import {LayerCache, MaskletFrames, layersAt} from "./overlay.js";
import {VideoPlayer} from "./player.js";
import {Timeline} from "./timeline.js";

export const PLAYER_HELP = [["← →", "previous / next frame"], ["Shift+← →", "10 frames back / on"],
  ["Space", "play / pause"], ["Home End", "first / last frame"]];
export const REPEATING = ["ArrowLeft", "ArrowRight"];

/** A masklet's colour: its color_index in the palette (else its position). */
export function maskletColor(m, i) {
  const k = Number.isInteger(m.color_index) ? m.color_index : i;
  return PALETTE[((k % PALETTE.length) + PALETTE.length) % PALETTE.length];
}

export class VideoStage {
  /** objects() → drawable objects (overlay.js layersAt); rows() → the timeline's rows. */
  constructor(entry, page, {objects, rows}) {
    const t = entry.task;
    Object.assign(this, {entry, page, task: t, objects, rows, viewer: page.viewer});
    this.video = t.video;
    this.h = t.video.height;
    this.w = t.video.width;
    this.n = Math.max(1, Number(t.video.frame_count) || 1);
    this.masklets = new MaskletFrames(page.api);
    this.cache = new LayerCache();
    this.player = null;
    this.timeline = null;
    this.mounted = false;
    this.keys = {
      ArrowLeft: (e) => this.player?.step(e?.shiftKey ? -10 : -1),
      ArrowRight: (e) => this.player?.step(e?.shiftKey ? 10 : 1),
      " ": () => this.player?.toggle(),
      Home: () => this.player?.step(-this.n), End: () => this.player?.step(this.n),
    };
  }

  get frame() { return this.player ? this.player.index : startFrame(this.task); }

  mount() {
    this.mounted = true;
    const t = this.task;
    this.timeline = new Timeline({n: this.n, fps: Number(this.video.sample_fps) || 0,
      onSeek: (i) => this.player?.seek(i), onToggle: () => this.player?.toggle()});
    this.timeline.mount();
    this.player = new VideoPlayer({viewer: this.viewer, video: this.video,
      urlOf: (i) => frameUrl(t.frame_url, t.video.id, i), first: {index: startFrame(t), img: this.entry.img},
      onIndex: (i) => this.timeline?.setFrame(i, !!this.player?.playing), onShown: () => this.drawLayers()});
    this.renderRows();
    this.player.start();
    this.loadMasklets();
  }

  unmount() {
    this.mounted = false;
    this.player?.destroy();
    this.timeline?.unmount();
    this.player = null;
    this.timeline = null;
  }

  /** Read the per-frame masks of the task's masklets; the frame shown is redrawn as they arrive. */
  loadMasklets() {
    for (const m of this.task.masklets || []) {
      this.masklets.load(m, () => {
        const f = this.shownFrame();
        if (this.mounted && f >= m.first_frame && f <= m.last_frame) this.drawLayers();
      }).catch((err) => {
        if (this.mounted) this.page.notify(`The frames of masklet ${m.id} could not be read: ${err.message}`, "error");
      });
    }
  }

  /** The frame whose image is on screen (the masks drawn must be that frame's). */
  shownFrame() { return this.player?.shown ?? this.frame; }

  /** A masklet as an object to draw. */
  maskletObject(m, {color, alpha = 1, style = {fillAlpha: 90, edgeAlpha: 255}, key = `m${m.id}`}) {
    return {key, color, alpha, style, at: (f) => this.masklets.at(m.id, f)};
  }

  drawLayers() {
    if (!this.mounted) return;
    this.viewer.layers = layersAt(this.cache, this.objects(), this.shownFrame(), {h: this.h, w: this.w});
    this.viewer.redraw();
  }

  renderRows() { this.timeline?.render(this.rows()); }

  /** Rows and layers again (an object was added, cut, selected or deleted). */
  refresh() {
    if (!this.mounted) return;
    this.renderRows();
    this.drawLayers();
  }
}
