// The side panel of the queue page: the task's head (kind, number, phrase, caption, reason), its
// question, verdict buttons and keyboard help, the empty queue's lists (open tasks that are not for
// this person and why, kinds with work waiting), the kind choices, the counters and the confirmation
// of each verdict. Text only.

import {kindTitle} from "./kinds/index.js";
import {actionButton, announce, byId, el} from "./ui.js";

const COMMON_HELP = [["K", "skip this task"], ["Wheel, + −", "zoom"], ["Space+drag, middle drag", "pan"],
  ["F", "fit the image"], ["V", "hide / show masks"], ["L", "similar images (open / close)"],
  ["Shift+Z", "undo your last verdict (for a minute)"], ["?", "hide / show this help"]];
const body = document.body;

export function showTask(entry) {
  const t = entry.task;
  body.dataset.taskId = String(t.id);
  body.dataset.taskKind = t.kind;
  byId("kind-badge").textContent = kindTitle(t.kind);
  byId("task-no").textContent = `task ${t.id}`;
  byId("phrase").textContent = t.phrase ?? "";
  byId("caption").textContent = t.caption ?? "";
  byId("reason").textContent = t.reason ? `Why: ${t.reason}` : "";
  byId("comment").value = entry.comment || "";
  renderEmpty(null);
}

export function showMode(mode) {
  byId("question").replaceChildren(...mode.question());
  byId("actions").replaceChildren(...mode.actions.map((a) =>
    actionButton(a.text, a.hint, a.tone, a.run, {"data-label": a.label, title: a.help})));
  renderHelp(mode.help);
}

export function clearTask() {
  delete body.dataset.taskId;
  delete body.dataset.taskKind;
  for (const id of ["kind-badge", "task-no", "phrase", "caption", "reason"]) byId(id).textContent = "";
  byId("question").replaceChildren();
  byId("actions").replaceChildren();
  renderHelp([]);
}

export function comment() { return byId("comment").value; }

function renderHelp(keys) {
  byId("help-keys").replaceChildren(...[...keys, ...COMMON_HELP].flatMap(([key, text]) =>
    [el("dt", {}, [el("kbd", {text: key})]), el("dd", {text})]));
}

export function toggleHelp() { byId("help").open = !byId("help").open; }

/** The empty answer's lists; ``canAsk(kind)``: the person may add that kind (a button calls ask). */
export function renderEmpty(info, {canAsk = () => false, ask = () => {}} = {}) {
  const count = (n, capped) => `${n}${capped ? "+" : ""}`;
  const blocked = info?.blocked || [], waiting = info?.waiting || [];
  byId("blocked-list").replaceChildren(...blocked.map((b) => el("li", {"data-kind": b.kind, "data-code": b.code}, [
    el("span", {class: "count", text: `${count(b.open, b.capped)} ${kindTitle(b.kind)}`}),
    el("span", {class: "why", text: b.reason}),
  ])));
  byId("waiting-list").replaceChildren(...waiting.map((w) => {
    const item = el("li", {"data-kind": w.kind, "data-assigned": w.assigned ? "1" : "0"}, [
      el("span", {class: "count", text: `${count(w.open, w.capped)} ${kindTitle(w.kind)}`})]);
    if (w.assigned && canAsk(w.kind)) {
      item.append(el("button", {type: "button", class: "ask-kind", text: "Add this kind", onclick: () => ask(w.kind)}));
    } else {
      item.append(el("span", {class: "why", text: "not assigned to you (an admin can assign it)"}));
    }
    return item;
  }));
  byId("blocked-box").hidden = !blocked.length;
  byId("waiting-box").hidden = !waiting.length;
  byId("empty-info").hidden = !info || (!blocked.length && !waiting.length);
}

/** The kinds as checkboxes; ``onPick(kinds)`` hears of a change (the last one cannot be unchecked). */
export function renderKinds(allowed, chosen, onPick, onNone) {
  body.dataset.kinds = chosen.join(",");
  byId("kind-choices").replaceChildren(...allowed.map((kind) => {
    const input = el("input", {type: "checkbox", value: kind, id: `kind-${kind}`});
    input.checked = chosen.includes(kind);
    input.disabled = allowed.length === 1;
    input.addEventListener("change", () => {
      const picked = [...document.querySelectorAll("#kind-choices input:checked")].map((n) => n.value);
      if (!picked.length) { input.checked = true; onNone(); return; }
      onPick(picked);
    });
    return el("label", {for: `kind-${kind}`}, [input, el("span", {text: kindTitle(kind)})]);
  }));
  byId("kinds").hidden = !allowed.length;
}

export function checkKinds(chosen) {
  for (const node of document.querySelectorAll("#kind-choices input")) node.checked = chosen.includes(node.value);
  body.dataset.kinds = chosen.join(",");
}

/** A verdict was given: say so (a toast read out by screen readers) and highlight the session's count. */
export function verdictGiven(task, label) {
  announce(`Task ${task.id}: ${String(label).replaceAll("_", " ")} — sent. Next task.`);
  const count = byId("session-count");
  count.classList.remove("bumped");
  void count.offsetWidth; // restart the animation
  count.classList.add("bumped");
}

export function renderCounters({count, retrying}, done) {
  body.dataset.pending = String(count);
  const pending = byId("pending");
  pending.hidden = !retrying;
  pending.textContent = retrying ? `${count} verdict(s) not saved yet: retrying…` : "";
  byId("session-count").textContent = done ? `${done} done this session` : "";
}
