// The queue's state and its decisions, without DOM, timers or requests (the controller does those):
//
//   entries   an entry is one leased task: {task, img, imgError, startedAt, clock, mode, comment, error}.
//             current (shown), prefetched (leased in reserve), backlog (refused verdicts, shown again
//             before new tasks), parked (skipped, held until the next task is leased so it is not the
//             same one).
//   outbox    task id → {entry, body, attempts}: verdicts sent but not yet stored; a failed send is
//             retried (same body, same client_id) while verdictStep says "retry".
//   kinds     the task kinds asked for, among those the person may take (allowed).

const RETRY_FIRST_MS = 500;
export const RETRY_MAX_MS = 15_000;

/** The wait before the ``attempts``-th retry of a verdict: doubling from 0.5 s, at most 15 s. */
export function retryDelayMs(attempts) {
  return Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** Math.min(Math.max(attempts, 1) - 1, 5));
}

/**
 * What follows a failed send of a verdict, from the error's HTTP status (an ApiError):
 *   "signed_out"  401: the page is on its way to the log-in page; the verdict is not sent again
 *   "conflict"    409 decision_conflict: stored, but someone decided the item differently elsewhere
 *   "retry"       no answer, 5xx or 429: send it again later, with the same client_id
 *   "refused"     422: the verdict is invalid; the task comes back to be judged again
 *   "failed"      any other answer: the verdict is lost (the lease is gone, the task is done …)
 */
export function verdictStep(err) {
  const status = Number(err?.status) || 0;
  if (status === 401) return "signed_out";
  if (status === 409 && err.code === "decision_conflict") return "conflict";
  if (status === 0 || status >= 500 || status === 429) return "retry";
  if (status === 422) return "refused";
  return "failed";
}

/**
 * What an empty page says, from the error of the last lease (null: the queue answered "nothing"):
 *   "refused"          asking again would not help (400, 403, 404, 422)
 *   "too_many_leases"  other tabs of this person hold tasks (409 too_many_leases): ask again later
 *   "unreachable"      any other failure: ask again later
 *   "empty"            no task right now: ask again later
 */
export function emptyReason(err) {
  if (!err) return "empty";
  if ([400, 403, 404, 422].includes(err.status)) return "refused";
  if (err.status === 409 && err.code === "too_many_leases") return "too_many_leases";
  return "unreachable";
}

/** The kinds to ask for: the saved choice (if any of it is still allowed), else every allowed kind. */
export function initialKinds(allowed, saved) {
  const chosen = (Array.isArray(saved) ? saved : allowed).filter((k) => allowed.includes(k));
  return chosen.length ? chosen : [...allowed];
}

export class QueueState {
  constructor() {
    this.current = null;
    this.prefetched = null;
    this.backlog = [];
    this.parked = new Set();
    this.outbox = new Map();
    this.allowed = [];
    this.kinds = null;
    this.done = 0; // verdicts given this session (a refused or lost one is taken back)
    this.lastError = null; // the error of the last lease, null once one succeeds
    this.empty = null; // the last empty answer of /tasks/next: {message, blocked, waiting}
    this.stopped = false; // the page is going away: nothing more is leased
    this.phase = "busy"; // "busy" (loading) | "ready" (a task shown) | "empty" (asking again later) | "error"
  }

  /** Every entry whose lease this page holds (the heartbeat renews them). */
  held() {
    return [this.current, this.prefetched, ...this.backlog, ...this.parked].filter(Boolean);
  }

  /** A task is ready to show without asking the server. */
  hasNext() { return this.backlog.length > 0 || this.prefetched !== null; }

  /** The next entry to show: a refused one first, else the reserve (which is then gone). */
  takeNext() {
    if (this.backlog.length) return this.backlog.shift();
    const entry = this.prefetched;
    this.prefetched = null;
    return entry;
  }

  /** A lease just came back: "keep" it in reserve, or "release" it (the page stops, or the kinds
   * changed while it was asked for). */
  leased(entry) {
    if (this.stopped || (this.kinds && !this.kinds.includes(entry.task.kind))) return "release";
    this.prefetched = entry;
    return "keep";
  }

  /** A verdict on ``entry`` is on its way: the item the controller sends. */
  queueVerdict(entry, body) {
    entry.error = null;
    const item = {entry, body, attempts: 0};
    this.outbox.set(entry.task.id, item);
    this.done++;
    return item;
  }

  /** The verdict was stored. */
  stored(item) { this.outbox.delete(item.entry.task.id); }

  /** A send of ``item`` failed: apply verdictStep's answer and return it. */
  sendFailed(item, err) {
    const step = verdictStep(err);
    if (step === "retry") {
      item.attempts++;
      return step;
    }
    if (step === "signed_out") return step;
    this.outbox.delete(item.entry.task.id);
    if (step === "conflict") return step;
    this.done--;
    if (step === "refused") {
      item.entry.error = err.message;
      this.backlog.push(item.entry);
    }
    return step;
  }

  /** Verdicts not yet stored, and whether any of them is being retried. */
  pending() {
    return {count: this.outbox.size, retrying: [...this.outbox.values()].some((i) => i.attempts > 0)};
  }

  /** The lease on ``entry`` is gone: where it was ("current": the controller moves on; "prefetched":
   * a new reserve is needed; "held": it was dropped from the backlog or the parked ones). */
  lost(entry) {
    if (this.current === entry) return "current";
    if (this.prefetched === entry) {
      this.prefetched = null;
      return "prefetched";
    }
    this.backlog = this.backlog.filter((e) => e !== entry);
    this.parked.delete(entry);
    return "held";
  }

  /** The kinds the person may take and their saved choice. */
  setAllowed(allowed, saved) {
    this.allowed = [...allowed];
    this.kinds = initialKinds(this.allowed, saved);
  }

  /** Ask for these kinds from now on; returns the reserve entry to give back when it is no longer
   * among them (the task on screen stays). */
  chooseKinds(kinds) {
    this.kinds = this.allowed.filter((k) => kinds.includes(k));
    const reserve = this.prefetched;
    if (reserve && !this.kinds.includes(reserve.task.kind)) {
      this.prefetched = null;
      return reserve;
    }
    return null;
  }

  /** The page goes away: nothing more is leased; returns every entry whose lease is to be given back
   * (the one on screen included). */
  stop() {
    this.stopped = true;
    const held = this.held();
    this.prefetched = null;
    this.backlog = [];
    this.parked.clear();
    return held;
  }
}
