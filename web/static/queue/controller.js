// The queue controller: lease (POST /tasks/next) → show → submit | skip | lease lost → next …
// While a task is shown the next one is already leased and its image loaded (prefetch), so a verdict
// shows the next task at once; the verdict itself is sent in the background and retried with the
// same client_id while the server cannot answer (state.js verdictStep decides from the HTTP status).
// Every held lease gets a heartbeat; a lost one is dropped. An empty queue is asked again every 10 s.

import {ActiveClock} from "./clock.js";
import {createMode} from "./kinds/index.js";
import * as panel from "./panel.js";
import {QueueState, emptyReason, retryDelayMs} from "./state.js";
import {notify, setState, stageMessage, uuid} from "./ui.js";
import {taskPicture} from "./video/media.js";

const POLL_MS = 10_000; // empty queue: ask again this often
const IDLE_HOLD_MS = 10 * 60_000; // after this long without input, leases are no longer renewed
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const EMPTY_MODE = {question: () => [], actions: [], keys: {}, help: [], mount() {}, unmount() {}};

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.decoding = "async";
    img.onload = () => (img.decode ? img.decode() : Promise.resolve()).catch(() => {}).then(() => resolve(img));
    img.onerror = () => reject(new Error("the image could not be loaded"));
    img.src = url;
  });
}

export class QueueController {
  /** api: api.js request; viewer: viewer.js Viewer; saveKinds(kinds): remember the choice of kinds;
   * reservedKeys: the page's own keys, which no task kind may take; onClose(): the shown task goes away. */
  constructor({api, viewer, saveKinds = () => {}, reservedKeys = [], onClose = () => {},
    onStored = () => {}}) {
    this.api = api;
    this.onStored = onStored; // a verdict was stored (or stored as a conflict): undo.js offers its undo
    this.viewer = viewer;
    this.saveKinds = saveKinds;
    this.onClose = onClose;
    this.state = new QueueState();
    this.prefetching = null; // the lease under way
    this.advancing = null; // the move to the next task under way
    this.pollTimer = null;
    this.lastInputAt = performance.now();
    this.brush = {size: null}; // brush diameter in image pixels, once chosen (kept across tasks)
    // what a task kind's mode may use (kinds/mode.js)
    this.page = {
      viewer, api, brush: this.brush, reserved: reservedKeys, notify, stageMessage,
      submit: (label, masks = []) => this.submit(label, masks), lost: (entry) => this.lost(entry),
    };
  }

  get current() { return this.state.current; }

  /** The page's phase: "busy" | "ready" | "empty" | "error" (also on <body> as data-state). */
  setPhase(phase) {
    this.state.phase = phase;
    setState(phase);
  }

  ready() { return this.state.phase === "ready"; }

  // ------------------------------------------------------------ leasing
  async lease() {
    const {kinds} = this.state;
    const task = await this.api("POST", "/tasks/next", kinds ? {kinds} : {});
    if (!task || task.id === undefined || task.id === null) { // nothing for us: the answer says why
      this.state.empty = task;
      return null;
    }
    const entry = {task, img: null, imgError: null};
    try { entry.img = await loadImage(taskPicture(task).url); } catch (err) { entry.imgError = err.message; }
    return entry;
  }

  /** Lease the next task in the background (at most one held in reserve). */
  prefetch() {
    const {state} = this;
    if (state.prefetched) return Promise.resolve(state.prefetched);
    if (this.prefetching) return this.prefetching;
    if (state.stopped) return Promise.resolve(null);
    this.prefetching = this.lease().then((entry) => {
      this.prefetching = null;
      state.lastError = null;
      if (!entry) return null;
      if (state.leased(entry) === "keep") return entry;
      if (state.stopped) { this.release(entry.task.id, {keepalive: true}); return null; }
      this.release(entry.task.id); // asked before the choice of kinds changed
      return this.prefetch();
    }, (err) => {
      this.prefetching = null;
      state.lastError = err;
      return null;
    });
    return this.prefetching;
  }

  async takeNext() {
    if (!this.state.hasNext()) await this.prefetch();
    return this.state.takeNext();
  }

  advance() {
    if (this.advancing) return this.advancing;
    this.advancing = (async () => {
      this.closeCurrent();
      this.setPhase("busy");
      clearTimeout(this.pollTimer);
      if (!this.state.hasNext()) stageMessage("Loading the next task…");
      const entry = await this.takeNext();
      if (this.state.stopped) return;
      if (entry) this.show(entry); else this.showEmpty();
    })().finally(() => { this.advancing = null; });
    return this.advancing;
  }

  closeCurrent() {
    const entry = this.state.current;
    if (!entry) return;
    entry.mode.unmount();
    entry.comment = panel.comment();
    this.state.current = null;
    this.onClose();
    this.viewer.clear();
    stageMessage("");
  }

  show(entry) {
    const t = entry.task;
    this.state.current = entry;
    entry.startedAt = entry.startedAt || new Date().toISOString();
    entry.clock = entry.clock || new ActiveClock();
    entry.clock.start(performance.now(), !document.hidden);
    panel.showTask(entry);
    stageMessage("");
    const picture = taskPicture(t); // an image task's image, a video task's first frame
    if (entry.img) this.viewer.setImage(entry.img, picture.width, picture.height);
    else { this.viewer.clear(); stageMessage(`Image unavailable (${entry.imgError}). Skip this task with K.`, true); }
    try {
      entry.mode = entry.mode || createMode(entry, this.page);
    } catch (err) {
      notify(`This task cannot be shown: ${err.message}`, "error");
      entry.mode = EMPTY_MODE;
    }
    panel.showMode(entry.mode);
    entry.mode.mount();
    if (entry.error) notify(`Refused earlier: ${entry.error}`, "error");
    this.setPhase("ready");
    this.prefetch();
  }

  showEmpty() {
    panel.clearTask();
    this.viewer.clear();
    const err = this.state.lastError;
    const reason = emptyReason(err);
    if (reason === "refused") { // asking again would not help
      this.renderEmpty(null);
      this.setPhase("error");
      stageMessage(`The queue refused: ${err.message}`, true);
      return;
    }
    if (reason === "too_many_leases") {
      this.renderEmpty(null);
      stageMessage(`${err.message} (in your other tabs or windows). Checking again every 10 s.`, true);
    } else if (reason === "unreachable") {
      this.renderEmpty(null);
      stageMessage("Cannot reach the server; trying again every 10 s.", true);
    } else {
      const info = this.state.empty;
      this.renderEmpty(info);
      stageMessage(`${info?.message || "No tasks right now."} Checking again every 10 s.`);
    }
    this.setPhase("empty");
    this.schedulePoll();
  }

  renderEmpty(info) {
    panel.renderEmpty(info, {canAsk: (kind) => this.state.allowed.includes(kind),
      ask: (kind) => this.chooseKinds([...this.state.kinds, kind])});
  }

  schedulePoll(ms = POLL_MS) {
    clearTimeout(this.pollTimer);
    this.pollTimer = setTimeout(() => this.poll(), ms);
  }

  /** Ask the queue again now (an empty page, a verdict stored, the tab shown again). */
  async poll() {
    const {state} = this;
    if (state.current || this.advancing || state.stopped) return;
    if (document.hidden) { // a hidden tab leases nothing; it asks again when shown
      this.schedulePoll();
      return;
    }
    if (state.hasNext() || await this.prefetch()) this.advance();
    else if (!state.current && !this.advancing) this.showEmpty();
  }

  pollIfEmpty() {
    if (this.state.phase !== "empty") return;
    clearTimeout(this.pollTimer);
    this.poll();
  }

  // ------------------------------------------------------------ task kinds
  setAllowed(allowed, saved) {
    this.state.setAllowed(allowed, saved);
    panel.renderKinds(allowed, this.state.kinds, (kinds) => this.chooseKinds(kinds),
      () => notify("Choose at least one task kind.", "warn"));
  }

  /** Ask for these kinds from now on: a reserve task of another kind is given back, and an empty page
   * asks again at once. The task on screen stays (judge it or skip it). */
  chooseKinds(kinds) {
    const {state} = this;
    const reserve = state.chooseKinds(kinds);
    panel.checkKinds(state.kinds);
    this.saveKinds(state.kinds);
    if (reserve) {
      this.release(reserve.task.id);
      if (state.current) this.prefetch();
    }
    if (!state.current && !this.advancing && ["empty", "error"].includes(state.phase)) {
      clearTimeout(this.pollTimer);
      state.lastError = null;
      this.advance();
    }
  }

  // ------------------------------------------------------------ verdicts
  submit(label, masks = []) {
    const entry = this.state.current;
    if (!entry || !this.ready()) return;
    if (!entry.img) { notify("The image could not be loaded: skip this task (K).", "warn"); return; }
    const text = panel.comment().trim();
    const verdict = {client_id: uuid(), label, active_ms: entry.clock.stop(performance.now()),
      started_at: entry.startedAt, masks};
    if (text) verdict.comment = text;
    const item = this.state.queueVerdict(entry, verdict);
    this.updateCounters();
    panel.verdictGiven(entry.task, label);
    this.send(item);
    this.advance();
  }

  /** Send a verdict until the server answers; what a failure means comes from its HTTP status. */
  async send(item) {
    const id = item.entry.task.id;
    for (;;) {
      try {
        await this.api("POST", `/tasks/${id}/verdict`, item.body);
        this.state.stored(item);
        this.updateCounters();
        this.onStored(item);
        // the queue was asked while this verdict was on its way: ask again now that it counts (it may
        // have made a task, e.g. the correction after "instances missing")
        this.pollIfEmpty();
        return;
      } catch (err) {
        const step = this.state.sendFailed(item, err);
        this.updateCounters();
        if (step === "retry") {
          await sleep(retryDelayMs(item.attempts));
          continue;
        }
        if (step === "conflict") { notify(`Task ${id}: ${err.message}`, "warn"); this.onStored(item); } // stored, not applied
        else if (step === "refused") {
          notify(`Task ${id} was refused (${err.message}); it comes back next.`, "error");
          if (!this.state.current && !this.advancing) this.advance();
        } else if (step === "failed") notify(`Task ${id} was not saved: ${err.message}`, "error");
        return; // signed_out: on the way to the log-in page
      }
    }
  }

  updateCounters() { panel.renderCounters(this.state.pending(), this.state.done); }

  /** A task whose verdict was undone is leased to us again (undo.js): show it now; the task on screen
   * waits in the backlog and comes next. */
  async reopen(task) {
    if (this.advancing) await this.advancing;
    const entry = {task, img: null, imgError: null};
    try { entry.img = await loadImage(taskPicture(task).url); } catch (err) { entry.imgError = err.message; }
    const shown = this.state.current;
    this.closeCurrent();
    if (shown) this.state.backlog.unshift(shown);
    this.state.done = Math.max(0, this.state.done - 1);
    this.updateCounters();
    clearTimeout(this.pollTimer);
    this.show(entry);
  }

  // ------------------------------------------------------------ skip, leases
  async skip() {
    const entry = this.state.current;
    if (!entry || !this.ready()) return;
    this.state.parked.add(entry);
    await this.advance();
    if (this.prefetching) await this.prefetching; // lease the next task before this one goes back
    this.state.parked.delete(entry);
    await this.release(entry.task.id, {skip: true});
  }

  /** Give a lease back; skip: the server remembers it and never offers this task to this user again. */
  async release(id, {keepalive = false, skip = false} = {}) {
    try {
      await this.api("POST", `/tasks/${id}/release`, skip ? {skip: true} : undefined, {allow: [409], keepalive});
    } catch { /* the lease runs out by itself */ }
  }

  /** Renew every lease held, unless the user has been away so long that the tasks should go back. */
  heartbeatAll() {
    if (performance.now() - this.lastInputAt > IDLE_HOLD_MS) return;
    for (const entry of this.state.held()) {
      this.api("POST", `/tasks/${entry.task.id}/heartbeat`, undefined).then((out) => {
        entry.task.lease_expires_at = out.lease_expires_at;
      }, (err) => { if (err.status === 409) this.lost(entry); });
    }
  }

  /** The lease on ``entry`` is gone (expired and taken, or done elsewhere): drop it. */
  lost(entry) {
    const where = this.state.lost(entry);
    if (where === "current") {
      notify("Your lease on this task ran out; it was dropped. Here is the next one.", "warn");
      this.advance();
    } else if (where === "prefetched" && this.state.current) {
      this.prefetch();
    }
  }

  /** The user did something (keeps leases renewed and the task's clock running). */
  activity() {
    this.lastInputAt = performance.now();
    this.state.current?.clock?.input(this.lastInputAt);
  }

  visibility(visible) {
    this.state.current?.clock?.visibility(visible, performance.now());
  }

  /** Give every unjudged lease back (the page is going away, or the user logs out). */
  releaseAll() {
    clearTimeout(this.pollTimer);
    return Promise.allSettled(this.state.stop().map((entry) => this.release(entry.task.id, {keepalive: true})));
  }
}
