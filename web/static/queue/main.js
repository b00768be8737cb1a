// The annotator's task page (queue.html): one task at a time, keyboard first. This entry wires the
// modules together: the API client (api.js), the viewer (viewer.js), the controller (controller.js:
// lease, prefetch, heartbeat, retry; its state in state.js) and the task kinds (kinds/: one module per
// kind, the verdict buttons built from the label words each task carries). It owns the page's keys
// and events.
//
//   task kinds   the annotator picks among the kinds they may take (/auth/me allowed_kinds); the choice
//                is remembered per user (localStorage) and sent as ``kinds`` to /tasks/next.
//   empty queue  /tasks/next answers {task: null, message, blocked, waiting}: the page shows the
//                message, the open tasks that are not for this person and why, and the kinds that have
//                work waiting (one click asks for such a kind too).
//
// For tests and tooling the page sets on <body>: data-state ("busy" | "ready" | "empty" | "error"),
// data-kinds (the kinds asked for, comma-separated), data-task-id, data-task-kind, data-pending
// (verdicts not yet stored) and, on correct tasks, what kinds/correct.js lists.
//
// Phrases and captions are model output: they reach the page as text only (textContent, el text).

import {createApi} from "./api.js";
import {QueueController} from "./controller.js";
import {KINDS} from "./kinds/index.js";
import * as panel from "./panel.js";
import {SimilarStrip} from "./similar.js";
import {byId, el, isTyping, nav, noFocus, notify, onLogout, stageMessage} from "./ui.js";
import {UndoOffer} from "./undo.js";
import {Viewer} from "./viewer.js";

const DEFAULT_HEARTBEAT_S = 60; // queue.heartbeat_s's default; used unless the API says otherwise

let me = null; // the signed-in user (csrf_token for state-changing requests)

function toLogin() {
  location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
}

const api = createApi({csrfToken: () => me?.csrf_token, onUnauthorized: toLogin});
const viewer = new Viewer(byId("stage"), byId("canvas"), {onZoom: (text) => { byId("zoom-level").textContent = text; }});
const kindsKey = () => `dataengine.queue.kinds.${me?.username || ""}`;
// the current image's neighbours, asked for only when opened (similar.js); closed when the task changes
const similar = new SimilarStrip({api, el, nodes: {section: byId("similar"), status: byId("similar-status"),
  list: byId("similar-list"), button: byId("similar-toggle")}});
// The page's own keys (a task kind's own keys come first; its verdict keys never take these).
const PAGE_KEYS = {
  k: () => queue.skip(), f: () => viewer.fit(), v: () => viewer.toggleMasks(), l: () => similar.toggle(queue.current?.task),
  "=": () => viewer.zoomCentre(1.25), "+": () => viewer.zoomCentre(1.25), "-": () => viewer.zoomCentre(0.8),
};
const REPEATING_KEYS = ["[", "]"]; // a held key must not judge task after task; brush size may repeat

const queue = new QueueController({
  api, viewer, reservedKeys: [...Object.keys(PAGE_KEYS), "?"], onClose: () => similar.close(), saveKinds: (kinds) => {
    try { localStorage.setItem(kindsKey(), JSON.stringify(kinds)); } catch { /* private mode: not kept */ }
  },
  onStored: () => undoOffer.refresh(),
});
// after a verdict is stored: "Undo" for queue.undo_window_s (Shift+Z; Ctrl+Z where the task has no undo of its own)
const undoOffer = new UndoOffer({api, queue, notify, host: byId("toasts")});

function savedKinds() {
  try { return JSON.parse(localStorage.getItem(kindsKey()) || "null"); } catch { return null; }
}

function onKeyDown(e) {
  if (e.key === " " && !isTyping(e.target)) {
    e.preventDefault();
    const play = queue.current?.mode.keys?.[" "]; // a video task: Space plays and pauses
    if (play) { if (!e.repeat && queue.ready()) play(e); return; }
    viewer.setSpace(true);
    return;
  }
  if (isTyping(e.target)) {
    if (e.key === "Escape") e.target.blur();
    return;
  }
  const entry = queue.current;
  if ((e.ctrlKey || e.metaKey) && !e.altKey && e.key.toLowerCase() === "z") {
    if (entry?.mode.undo && queue.ready()) { e.preventDefault(); entry.mode.undo(); }
    else if (!entry?.mode.undo && !e.repeat) { e.preventDefault(); undoOffer.undo(); } // the last verdict
    return;
  }
  if (e.shiftKey && !e.ctrlKey && !e.metaKey && !e.altKey && e.key.toLowerCase() === "z") {
    e.preventDefault();
    if (!e.repeat) undoOffer.undo();
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  if (key === "?") { e.preventDefault(); panel.toggleHelp(); return; }
  if (!entry || !queue.ready()) return;
  const handler = entry.mode.keys[key] || PAGE_KEYS[key];
  if (!handler) return;
  e.preventDefault();
  if (e.repeat && !REPEATING_KEYS.includes(key) && !entry.mode.repeating?.includes(key)) return;
  handler(e);
}

function wireStatic() {
  noFocus(byId("skip")).addEventListener("click", () => queue.skip());
  noFocus(byId("similar-toggle")).addEventListener("click", () => {
    if (queue.current && queue.ready()) similar.toggle(queue.current.task);
  });
  for (const node of document.querySelectorAll(".tools button")) {
    noFocus(node).addEventListener("click", () => queue.current?.mode.setTool?.(node.dataset.tool));
  }
  noFocus(byId("keep-mask")).addEventListener("click", () => queue.current?.mode.keep?.());
  byId("brush-size").addEventListener("input", (e) => {
    queue.brush.size = Number(e.target.value);
    byId("brush-size-value").textContent = `${queue.brush.size} px`;
    viewer.redraw();
  });
  window.addEventListener("keydown", onKeyDown, true);
  window.addEventListener("keyup", (e) => { if (e.key === " ") viewer.setSpace(false); });
  window.addEventListener("blur", () => viewer.setSpace(false));
  for (const type of ["keydown", "pointerdown", "pointermove", "wheel"]) {
    window.addEventListener(type, () => queue.activity(), {capture: true, passive: true});
  }
  document.addEventListener("visibilitychange", () => {
    queue.visibility(!document.hidden);
    if (document.hidden) return;
    queue.heartbeatAll(); // timers are throttled in hidden tabs
    queue.pollIfEmpty();
  });
  window.addEventListener("beforeunload", (e) => {
    if (queue.state.outbox.size || queue.current?.mode?.changed) { e.preventDefault(); e.returnValue = ""; }
  });
  window.addEventListener("pagehide", () => { queue.releaseAll(); }); // nobody waits for them to expire
  window.addEventListener("pageshow", (e) => { if (e.persisted) location.reload(); });
}

async function start() {
  wireStatic();
  queue.updateCounters();
  try {
    me = await nav("/queue");
  } catch (err) {
    if (err.status !== 401) { queue.setPhase("error"); stageMessage(`Cannot load the page: ${err.message}`, true); }
    return; // 401: on the way to the log-in page
  }
  const heartbeatMs = Math.max(5, Number(me.heartbeat_s) || DEFAULT_HEARTBEAT_S) * 1000;
  onLogout(() => queue.releaseAll());
  queue.setAllowed(Array.isArray(me.allowed_kinds) ? me.allowed_kinds : Object.keys(KINDS), savedKinds());
  setInterval(() => queue.heartbeatAll(), heartbeatMs);
  queue.advance();
}

start();
