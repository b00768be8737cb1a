// The video player: one sampled frame at a time in the page's viewer (viewer.js: zoom, pan and the
// mask layers work as on an image), play / pause at the video's sample rate, seek and step, and the
// frames around the one shown loaded ahead (frames.js: prefetch window, bounded cache of Image
// objects). It knows nothing of masks: onIndex(i) hears of every move (the slider and the timeline
// follow at once), onShown(i) once frame i's image is on screen (the masks of that frame follow).
//
// On <body>: data-frame (the frame asked for), data-frame-shown (the frame whose image is drawn),
// data-playing ("1" | "0").

import {FrameCache, clampFrame, prefetchIndices} from "./frames.js";

const body = document.body;

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.decoding = "async";
    img.onload = () => (img.decode ? img.decode() : Promise.resolve()).catch(() => {}).then(() => resolve(img));
    img.onerror = () => reject(new Error(`frame not loaded: ${url}`));
    img.src = url;
  });
}

export class VideoPlayer {
  /** video: the task's {frame_count, sample_fps}; urlOf(i): frame i's URL; first: {index, img} already
   * loaded (with the lease), or null. */
  constructor({viewer, video, urlOf, first = null, onIndex = () => {}, onShown = () => {}}) {
    Object.assign(this, {viewer, onIndex, onShown});
    this.n = Math.max(1, Number(video.frame_count) || 1);
    this.fps = Number(video.sample_fps) > 0 ? Number(video.sample_fps) : 6;
    this.cache = new FrameCache({load: (i) => loadImage(urlOf(i))});
    this.index = first ? clampFrame(first.index, this.n) : 0;
    this.shown = null;
    this.playing = false;
    this.direction = 1;
    this.timer = null;
    this.alive = true;
    if (first?.img) this.cache.put(this.index, first.img);
  }

  start() { this.seek(this.index); }

  /** Show frame ``index`` (kept inside the video); the image follows once loaded. */
  seek(index) {
    if (!this.alive) return;
    const i = clampFrame(index, this.n);
    this.direction = i < this.index ? -1 : i > this.index ? 1 : this.direction;
    this.index = i;
    body.dataset.frame = String(i);
    this.onIndex(i);
    this.cache.want(prefetchIndices(i, this.n, {direction: this.direction}));
    const img = this.cache.get(i);
    if (img) { this.draw(i, img); return; }
    this.cache.request(i).then((frame) => {
      if (frame && this.alive && this.index === i) this.draw(i, frame);
    });
  }

  draw(i, img) {
    this.viewer.img = img;
    this.shown = i;
    body.dataset.frameShown = String(i);
    this.onShown(i);
    this.viewer.redraw();
  }

  /** Move ``delta`` frames (pauses playback). */
  step(delta) {
    this.pause();
    this.seek(this.index + delta);
  }

  toggle() { if (this.playing) this.pause(); else this.play(); }

  play() {
    if (this.playing || !this.alive) return;
    if (this.index >= this.n - 1) this.seek(0);
    this.playing = true;
    this.direction = 1;
    body.dataset.playing = "1";
    this.onIndex(this.index);
    this.schedule();
  }

  pause() {
    clearTimeout(this.timer);
    if (!this.playing) return;
    this.playing = false;
    body.dataset.playing = "0";
    this.onIndex(this.index);
  }

  /** The next frame after 1/fps; a frame not loaded yet is waited for (playback never skips one). */
  schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (!this.playing || !this.alive) return;
      const next = this.index + 1;
      if (next >= this.n) { this.pause(); return; }
      this.cache.request(next).then(() => {
        if (!this.playing || !this.alive) return;
        this.seek(next);
        this.schedule();
      });
    }, 1000 / this.fps);
  }

  destroy() {
    this.pause();
    this.alive = false;
    this.cache.clear();
    for (const key of ["frame", "frameShown", "playing"]) delete body.dataset[key];
  }
}
