// Undo of the last verdict (POST /api/v1/verdicts/undo). Once a verdict is stored the page asks the
// server what may be undone (GET /verdicts/undo: the verdict and until when, queue.undo_window_s after
// it) and shows an "Undo" button for that long. The button, Shift+Z, or Ctrl+Z on a task without an
// undo of its own take the verdict back: the server supersedes it, puts back what it changed and
// leases its task to this person again; the page shows that task now (the one on screen is kept and
// comes next). The server is the judge: a refusal (too late, a later verdict, a gold task, decided
// again since) is shown as it says.

import {el, noFocus} from "./ui.js";

export class UndoOffer {
  /** api: api.js request; queue: the QueueController (reopen(task), state.outbox); notify: ui.js notify;
   * host: the element the offer is shown in (the toasts). */
  constructor({api, queue, notify, host}) {
    this.api = api;
    this.queue = queue;
    this.notify = notify;
    this.host = host;
    this.offer = null; // {verdict_id, task_id, until} while one is shown
    this.node = null;
    this.timer = null;
    this.busy = false;
  }

  /** A verdict was stored: ask what may be undone now and show the button until then. */
  async refresh() {
    let out;
    try { out = await this.api("GET", "/verdicts/undo"); } catch { return; }
    if (!out?.undoable) { this.hide(); return; }
    const left = Date.parse(out.until) - Date.now();
    if (!(left > 0)) { this.hide(); return; }
    this.show(out, left);
  }

  show(offer, ms) {
    this.hide();
    this.offer = offer;
    const button = noFocus(el("button", {type: "button", id: "undo-verdict", "data-verdict-id": String(offer.verdict_id)},
      [el("span", {text: `Undo “${offer.label}” on task ${offer.task_id}`}), el("kbd", {text: "⇧Z"})]));
    button.addEventListener("click", () => { button.blur(); this.undo(); });
    this.node = el("div", {class: "toast info undo-offer", role: "status"}, [button]);
    this.node.style.pointerEvents = "auto"; // the toasts let clicks through; this one is a button
    this.host.append(this.node);
    this.timer = setTimeout(() => this.hide(), ms);
  }

  hide() {
    clearTimeout(this.timer);
    this.node?.remove();
    this.node = null;
    this.offer = null;
  }

  /** Take the last verdict back and show its task again. */
  async undo() {
    if (this.busy) return;
    if (this.queue.state.outbox.size) { this.notify("Your last verdict is still being saved; undo in a moment.", "warn"); return; }
    const offer = this.offer;
    this.busy = true;
    try {
      const out = await this.api("POST", "/verdicts/undo", offer ? {verdict_id: offer.verdict_id} : {});
      this.hide();
      await this.queue.reopen(out.task);
      this.notify(`Verdict undone: task ${out.task.id} is back.`, "ok");
    } catch (err) {
      this.hide();
      this.notify(err.status === 409 ? `Cannot undo: ${err.message}` : `Undo failed: ${err.message}`, "warn");
    } finally {
      this.busy = false;
    }
  }
}
