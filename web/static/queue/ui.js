// DOM helpers of the queue page: elements by id, what app.js shares with every page (el: elements with
// text only, never HTML — phrases and captions are model output; uuid; nav: the navigation bar and the
// signed-in user; onLogout), toasts (and the one that confirms each verdict), the stage message, a
// list's new row scrolled into view, and buttons
// that never keep the focus (Enter or Space must not press them again later).

// DE: app.js, a classic script loaded before the page's modules (its top-level const is visible to them)
export const {el, uuid, nav, onLogout} = DE;
export const byId = (id) => document.getElementById(id);

export function setState(state) { document.body.dataset.state = state; }

export function notify(text, kind = "info", ms = kind === "error" ? 9000 : 4500) {
  const toast = el("div", {class: `toast ${kind}`, text, role: kind === "error" ? "alert" : "status"});
  byId("toasts").append(toast);
  setTimeout(() => toast.remove(), ms);
}

/** The one toast that confirms verdicts: a new verdict replaces its text and restarts its time (a fast
 * annotator's verdicts do not pile up). role=status: screen readers read it out. */
let verdictToast = null, verdictTimer = null;
export function announce(text, ms = 2500) {
  if (!verdictToast || !verdictToast.isConnected) {
    verdictToast = el("div", {class: "toast ok verdict-toast", role: "status"});
    byId("toasts").append(verdictToast);
  }
  verdictToast.textContent = text;
  verdictToast.classList.remove("fresh");
  void verdictToast.offsetWidth; // restart the highlight animation
  verdictToast.classList.add("fresh");
  clearTimeout(verdictTimer);
  verdictTimer = setTimeout(() => { verdictToast?.remove(); verdictToast = null; }, ms);
}

/** After a list was redrawn with more rows than ``before``: scroll its selected row, or else its last
 * row, into view (a new mask is added at the end of a list that may be scrolled away from it). */
export function revealNew(list, before) {
  const rows = list.querySelectorAll("li");
  if (rows.length <= before) return;
  const row = list.querySelector("li.selected") || rows[rows.length - 1];
  row.scrollIntoView({block: "nearest"});
}

export function stageMessage(text, isError = false) {
  const node = byId("stage-message");
  node.textContent = text || "";
  node.classList.toggle("error", isError);
}

/** Keep a button from taking the focus on mouse down. */
export function noFocus(node) {
  node.addEventListener("mousedown", (e) => e.preventDefault());
  return node;
}

/** A button: its text, the key shown, a tone class (ok, bad, warn), more attributes. */
export function actionButton(text, key, tone, onClick, attrs = {}) {
  const children = [el("span", {text})];
  if (key) children.push(el("kbd", {text: key}));
  const node = noFocus(el("button", {type: "button", class: tone, ...attrs}, children));
  node.addEventListener("click", () => { node.blur(); onClick(); });
  return node;
}

/** A small button inside a list row: the click does not reach the row. */
export function smallButton(text, title, onClick) {
  const node = noFocus(el("button", {type: "button", text, title}));
  node.addEventListener("click", (e) => { e.stopPropagation(); node.blur(); onClick(); });
  return node;
}

export function term(text) { return el("span", {class: "term", text}); }

/** The event comes from a field the user types in (keys there are text, not commands). */
export function isTyping(target) {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable || target.tagName === "TEXTAREA" || target.tagName === "SELECT") return true;
  return target.tagName === "INPUT" && !["range", "checkbox", "radio", "button"].includes(target.type);
}
