// Mining jobs: list, start, follow one job per stage (refreshed every 2 s while it runs), its
// failed items with reasons, retry. Paths, names and failure reasons are shown as text only.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const STAGES = ["mine", "caption", "parse", "propose", "negatives", "verify", "route"];
  const PAGE = 20;
  let current = null;  // the job shown in the detail view
  let detailTimer = null, listTimer = null, failureOffset = 0;

  function badge(text, node = DE.el("span")) {
    node.className = `badge ${text}`;
    node.textContent = text;
    return node;
  }

  function rate(x) { return x === null || x === undefined ? "" : `${x.toFixed(x < 10 ? 2 : 0)} items/s`; }

  // ------------------------------------------------------------------------------- list
  async function loadList() {
    try {
      const data = await DE.api("GET", "/jobs?limit=100");
      $("jobs-mode").textContent = data.mode === "celery" ? "runs on Celery workers" : "runs in this server (one job at a time)";
      const rows = data.jobs.map(j => {
        const failed = j.counts.failed + j.stage_failed;
        const row = [j.id, j.name, j.source_kind, badge(j.runner && ["queued", "failed"].includes(j.runner.state) ? j.runner.state : j.status),
                     j.until || "all", j.item_count, j.counts.done, j.counts.duplicate + j.counts.near_duplicate,
                     failed, j.counts.pending + j.stage_pending, DE.fmtTime(j.created_at)];
        return row;
      });
      const table = data.jobs.length ? DE.table([
        {label: "id", num: true}, {label: "name"}, {label: "kind"}, {label: "status"}, {label: "until"},
        {label: "items", num: true}, {label: "mined", num: true}, {label: "duplicates", num: true},
        {label: "failed", num: true}, {label: "pending", num: true}, {label: "created"},
      ], rows) : DE.el("p", {class: "empty", text: "No jobs yet: start one above."});
      if (data.jobs.length) {
        table.querySelectorAll("tbody tr").forEach((tr, i) => {
          const id = data.jobs[i].id;
          tr.classList.add("clickable");
          tr.dataset.jobId = String(id);
          if (current === id) tr.classList.add("selected");
          tr.addEventListener("click", () => open(id));
        });
      }
      $("jobs").replaceChildren(table);
      const busy = data.jobs.some(j => j.status !== "done" || (j.runner && ["queued", "running"].includes(j.runner.state)));
      clearTimeout(listTimer);
      listTimer = setTimeout(loadList, busy ? 5000 : 30000);
    } catch (err) {
      showError(err);
    }
  }

  function showError(err) {
    $("error").textContent = err.status === 403 ? "Your role cannot see mining jobs." : DE.errorText(err);
  }

  // ------------------------------------------------------------------------------ start
  async function start(event) {
    event.preventDefault();
    $("start-notice").textContent = "";
    $("error").textContent = "";
    const source = $("source").value.trim();
    if (!source) { $("error").textContent = "Give the source: a path on the server."; $("source").focus(); return; }
    const body = {source};
    for (const [key, id] of [["kind", "kind"], ["name", "job-name"], ["until", "until"], ["model_profile", "model-profile"],
                             ["images_dir", "images-dir"]]) {
      const value = $(id).value.trim();
      if (value) body[key] = value;
    }
    $("start").disabled = true;
    try {
      const started = await DE.api("POST", "/jobs", body);
      $("start-notice").textContent = `Job ${started.name} (id ${started.job_id}): ${started.items} items listed, `
        + `${started.new_items} new, ${started.pending} to mine ${started.mode === "celery" ? "on Celery workers" : "in the server"}.`;
      await loadList();
      open(started.job_id);
    } catch (err) {
      $("error").textContent = `Could not start the job: ${DE.errorText(err)}`;
    } finally {
      $("start").disabled = false;
    }
  }

  // ----------------------------------------------------------------------------- detail
  function open(id) {
    if (current !== id) failureOffset = 0;
    current = id;
    if (location.hash !== `#job-${id}`) history.replaceState(null, "", `#job-${id}`);
    document.querySelectorAll("#jobs tr.selected").forEach(tr => tr.classList.remove("selected"));
    const row = document.querySelector(`#jobs tr[data-job-id="${id}"]`);
    if (row) row.classList.add("selected");
    $("detail").hidden = false;
    $("detail-notice").textContent = "";
    loadDetail();
  }

  function close() {
    current = null;
    clearTimeout(detailTimer);
    $("detail").hidden = true;
    history.replaceState(null, "", location.pathname);
    document.querySelectorAll("#jobs tr.selected").forEach(tr => tr.classList.remove("selected"));
  }

  function stageRow(name, stage) {
    const bar = DE.el("div", {class: "progress"});
    let text;
    if (!stage) {
      text = "not started";
    } else {
      const c = stage.counts, total = stage.total || 0;
      const failed = c.failed || 0, done = c.done || 0;
      const other = (c.duplicate || 0) + (c.near_duplicate || 0) + (c.skipped || 0);
      for (const [cls, n] of [["p-done", done], ["p-other", other], ["p-failed", failed]]) {
        if (!total || !n) continue;
        const seg = DE.el("span", {class: cls, title: `${cls.slice(2)}: ${n}`});
        seg.style.width = `${(100 * n) / total}%`;
        bar.append(seg);
      }
      const parts = Object.entries(c).filter(([, n]) => n).map(([k, n]) => `${k.replace("_", " ")} ${n}`);
      text = `${parts.join(" · ") || "nothing"} — ${total - (c.pending || 0)} of ${total} finished`;
      const speed = rate(stage.recent_items_per_s) || rate(stage.items_per_s);
      if (speed) text += ` · ${speed}`;
    }
    return DE.el("div", {class: "stage-row", "data-stage": name}, [
      DE.el("span", {class: "stage-name", text: name}), bar, DE.el("span", {class: "muted", text}),
    ]);
  }

  async function loadDetail() {
    clearTimeout(detailTimer);
    const id = current;
    if (id === null) return;
    let job;
    try {
      job = await DE.api("GET", `/jobs/${id}`);
    } catch (err) {
      if (err.status === 404) { close(); $("error").textContent = `No job ${id}.`; return; }
      showError(err);
      detailTimer = setTimeout(loadDetail, 5000);
      return;
    }
    if (current !== id) return;
    $("detail-title").textContent = `${job.name} (id ${job.id})`;
    badge(job.status, $("detail-status"));
    const runner = job.runner;
    $("detail-runner").textContent = runner ? `runner: ${runner.state}${runner.error ? ` — ${runner.error}` : ""}` : "";
    $("detail-source").textContent = `${job.source_kind} ${job.source_uri} · until ${job.until || "the end"} · models ${job.model_profile} · `
      + `created ${DE.fmtTime(job.created_at)}${job.finished_at ? ` · finished ${DE.fmtTime(job.finished_at)}` : ""}`;
    const byName = Object.fromEntries(job.stages.map(s => [s.stage, s]));
    const names = [...job.planned_stages, ...job.stages.map(s => s.stage).filter(s => !job.planned_stages.includes(s))];
    $("stages").replaceChildren(...names.map(n => stageRow(n, byName[n])));
    $("failure-groups").replaceChildren(job.failures.length ? DE.table(
      [{label: "reason"}, {label: "items", num: true}, {label: "example"}],
      job.failures.map(f => [f.reason, f.count, f.example_key])) : DE.el("p", {class: "empty", text: "No failures."}));
    const select = $("failure-stage");
    if (select.options.length !== names.length + 1) {
      const keep = select.value;
      select.replaceChildren(DE.el("option", {value: "", text: "all"}), ...names.map(n => DE.el("option", {value: n, text: n})));
      select.value = names.includes(keep) ? keep : "";
    }
    await loadFailures();
    const running = job.status !== "done" || (runner && ["queued", "running"].includes(runner.state));
    if (running && current === id) detailTimer = setTimeout(loadDetail, 2000);
    else if (!running) loadList();
  }

  async function loadFailures() {
    const id = current;
    if (id === null) return;
    const stage = $("failure-stage").value;
    const query = `limit=${PAGE}&offset=${failureOffset}${stage ? `&stage=${encodeURIComponent(stage)}` : ""}`;
    let page;
    try { page = await DE.api("GET", `/jobs/${id}/failures?${query}`); } catch (err) { showError(err); return; }
    if (current !== id) return;
    $("failures").replaceChildren(page.items.length ? DE.table(
      [{label: "stage"}, {label: "item"}, {label: "image", num: true}, {label: "reason"}, {label: "attempts", num: true}, {label: "when"}],
      page.items.map(i => [i.stage, i.key ?? "—", i.image_id ?? "—", i.error ?? "—", i.attempts, DE.fmtTime(i.at)]),
    ) : DE.el("p", {class: "empty", text: "No failed items."}));
    $("failures").querySelectorAll("tbody td:nth-child(4), tbody td:nth-child(2)").forEach(td => td.classList.add("wrap"));
    const last = Math.min(page.total, failureOffset + page.items.length);
    $("failures-page").textContent = page.total ? `${failureOffset + 1}–${last} of ${page.total}` : "";
    $("failures-prev").disabled = failureOffset === 0;
    $("failures-next").disabled = last >= page.total;
    $("retry").disabled = false;
  }

  async function retry() {
    if (current === null) return;
    $("retry").disabled = true;
    try {
      const r = await DE.api("POST", `/jobs/${current}/retry`);
      $("detail-notice").textContent = `${r.retried} failed item${r.retried === 1 ? "" : "s"} back to pending; ${r.pending} to mine.`;
      failureOffset = 0;
      await loadDetail();
      loadList();
    } catch (err) {
      $("error").textContent = `Retry failed: ${DE.errorText(err)}`;
    } finally {
      $("retry").disabled = false;
    }
  }

  function fromHash() {
    const m = /^#job-(\d+)$/.exec(location.hash);
    if (m) open(Number(m[1]));
  }

  document.addEventListener("DOMContentLoaded", async () => {
    $("until").append(...STAGES.map(s => DE.el("option", {value: s, text: `${s}`})));
    $("start-form").addEventListener("submit", start);
    $("refresh-jobs").addEventListener("click", loadList);
    $("close-detail").addEventListener("click", close);
    $("retry").addEventListener("click", retry);
    $("failure-stage").addEventListener("change", () => { failureOffset = 0; loadFailures(); });
    $("failures-prev").addEventListener("click", () => { failureOffset = Math.max(0, failureOffset - PAGE); loadFailures(); });
    $("failures-next").addEventListener("click", () => { failureOffset += PAGE; loadFailures(); });
    window.addEventListener("hashchange", fromHash);
    try { await DE.nav("/jobs"); } catch (err) { return; }
    await loadList();
    fromHash();
    document.body.dataset.state = "ready";
  });
  window.addEventListener("pagehide", () => { clearTimeout(detailTimer); clearTimeout(listTimer); });
})();
