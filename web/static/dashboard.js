// The dashboard: GET /api/v1/dashboard drawn as small SVG bar charts and tables (no libraries).
// Every label is set as text (textContent / SVG <title>), never as HTML.
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";

  function svg(tag, attrs = {}, children = []) {
    const node = document.createElementNS(NS, tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "text") node.textContent = String(value);
      else node.setAttribute(key, String(value));
    }
    for (const child of children) node.append(child);
    return node;
  }

  // The axis top: 4 ticks of a round step (1, 2, 2.5, 5 × 10^k; whole numbers for counts).
  function niceMax(value, integer) {
    if (value <= 0) return integer ? 4 : 1;
    const raw = value / 4, pow = 10 ** Math.floor(Math.log10(raw));
    for (const m of [1, 2, 2.5, 5, 10]) {
      const step = m * pow;
      if (integer && !Number.isInteger(step)) continue;
      if (step >= raw) return 4 * step;
    }
    return 40 * pow;
  }

  // The decimals that show every multiple of ``step`` exactly (0.25 → 2, 5 → 0): no two ticks alike.
  function decimals(step) {
    for (let d = 0; d < 8; d++) {
      const scaled = step * 10 ** d;
      if (Math.abs(scaled - Math.round(scaled)) < 1e-6 * Math.max(1, scaled)) return d;
    }
    return 8;
  }

  // The tick labels from 0 to max in 4 steps; one that reads like the one below it is left out.
  function tickLabels(max, tick) {
    const step = max / 4, digits = decimals(step), out = [];
    for (let i = 0; i <= 4; i++) {
      const text = tick(step * i, i === 0 ? 0 : digits); // "0", not "0.00"
      out.push(i > 0 && text === out[i - 1] ? null : text);
    }
    return out;
  }

  // A label's width in CSS pixels at the axis text's size (measured: labels that would overlap are left out).
  const measure = document.createElement("canvas").getContext("2d");
  function textWidth(text, px) {
    if (!measure) return String(text).length * 0.6 * px;
    measure.font = `${px}px system-ui, sans-serif`;
    return measure.measureText(String(text)).width;
  }
  const drawn = new Map(); // box → its last options (redrawn when the box's width changes)
  const resized = typeof ResizeObserver === "function" ? new ResizeObserver((entries) => {
    for (const entry of entries) {
      const options = drawn.get(entry.target);
      if (options && Math.abs(entry.target.clientWidth - options.drawnWidth) > 1) bars(entry.target, options);
    }
  }) : null;

  // Vertical grouped bars: labels along x, one bar per series in each group. Drawn at the box's own width in
  // CSS pixels (the viewBox is that size), so the text keeps the page's size however wide the card is.
  // series: [{name, values}]; format(v) formats values for tooltips, tick(v, digits) the axis (default fixed
  // digits); every: label every n-th group at least (more are left out where they would not fit).
  function bars(box, options) {
    const {labels, series, height = 170, format = String, every = 1, integer = false,
           tick = (v, d) => v.toFixed(d)} = options;
    const width = Math.max(240, Math.round(box.clientWidth) || 460);
    const em = parseFloat(getComputedStyle(box).fontSize) * 0.75 || 12; // .chart text is .75em
    const max = niceMax(Math.max(0, ...series.flatMap(s => s.values.map(v => v ?? 0))), integer);
    const ticks = tickLabels(max, tick);
    const left = Math.ceil(Math.max(textWidth("000", em), ...ticks.map(t => textWidth(t || "", em)))) + 10;
    const right = 6, top = 10, bottom = Math.ceil(em * 2.2);
    const plotW = width - left - right, plotH = height - top - bottom;
    const root = svg("svg", {viewBox: `0 0 ${width} ${height}`, width, height, role: "img"});
    ticks.forEach((text, i) => {
      const y = top + plotH - (plotH * i) / 4;
      root.append(svg("line", {x1: left, x2: width - right, y1: y, y2: y, class: "grid-line"}));
      if (text !== null) root.append(svg("text", {x: left - 6, y: y + em / 3, "text-anchor": "end", text}));
    });
    const group = plotW / Math.max(1, labels.length);
    const barW = Math.max(1, (group * 0.8) / series.length);
    const widest = Math.max(1, ...labels.map(l => textWidth(l, em))) + 8;
    const step = Math.max(every, Math.ceil(widest / group));
    labels.forEach((label, i) => {
      const x0 = left + i * group + group * 0.1;
      series.forEach((s, j) => {
        const v = s.values[i];
        const h = v ? (plotH * v) / max : 0;
        const tip = `${label} · ${s.name}: ${v === null || v === undefined ? "no data" : format(v)}`;
        root.append(svg("rect", {x: x0 + j * barW, y: top + plotH - h, width: Math.max(0.5, barW - 1),
                                 height: Math.max(0, h), class: `bar s${s.cls ?? j}`}, [svg("title", {text: tip})]));
      });
      if (i % step === 0) {
        root.append(svg("text", {x: x0 + (group * 0.8) / 2, y: height - em * 0.8, "text-anchor": "middle",
                                 class: "x-label", text: label}));
      }
    });
    root.append(svg("line", {x1: left, x2: width - right, y1: top + plotH, y2: top + plotH, class: "axis"}));
    box.replaceChildren(root);
    drawn.set(box, {...options, drawnWidth: Math.round(box.clientWidth)});
    resized?.observe(box);
    return root;
  }

  return {bars, svg};
})();

(() => {
  const $ = (id) => document.getElementById(id);
  const KIND = {verify_mask: "verify mask", check_exhaustivity: "exhaustivity", correct: "correct"};
  let timer = null;

  function hourLabel(iso) {
    const d = new Date(iso);
    return `${String(d.getHours()).padStart(2, "0")}:00`;
  }

  function seconds(s) {
    if (s === null || s === undefined) return "—";
    if (s < 60) return `${s.toFixed(1)} s`;
    if (s < 3600) return `${(s / 60).toFixed(1)} min`;
    return `${(s / 3600).toFixed(1)} h`;
  }

  function render(data) {
    Charts.bars($("queue-chart"), {
      labels: data.queue.map(q => KIND[q.kind] || q.kind),
      series: [{name: "open", values: data.queue.map(q => q.open)},
               {name: "leased", values: data.queue.map(q => q.leased)}],
      format: v => String(Math.round(v)), integer: true,
    });
    const hours = data.throughput;
    Charts.bars($("throughput-chart"), {
      labels: hours.map(h => hourLabel(h.hour)),
      series: [{name: "verdicts", values: hours.map(h => h.verdicts), cls: 2}],
      format: v => String(Math.round(v)), integer: true, every: Math.max(1, Math.ceil(hours.length / 8)),
    });
    const total = hours.reduce((a, h) => a + h.verdicts, 0);
    $("throughput-total").textContent = `${total} human verdicts in the last ${data.hours} hours`;
    Charts.bars($("timing-chart"), {
      labels: data.timings.map(t => `${KIND[t.kind] || t.kind} (n=${t.n})`),
      series: [{name: "median", values: data.timings.map(t => t.median_s), cls: 3}],
      format: v => `${Number(v).toFixed(1)} s`, tick: (v, d) => `${v.toFixed(d)} s`,
    });

    const people = data.annotators;
    $("annotators").replaceChildren(people.length ? DE.table([
      {label: "person"}, {label: "role"}, {label: "verdicts", num: true}, {label: "active time", num: true},
      {label: "last verdict"}, {label: "gold correct", num: true}, {label: "gold accuracy", num: true},
      {label: "multi-reviewed", num: true}, {label: "agreement", num: true},
    ], people.map(a => [
      a.username, a.role, a.verdicts, seconds(a.active_s), DE.fmtTime(a.last_verdict_at),
      `${a.gold_correct} / ${a.gold_answered}`, DE.fmtPct(a.gold_accuracy), a.multi_reviewed, DE.fmtPct(a.agreement),
    ])) : DE.el("p", {class: "empty", text: "No human verdicts yet."}));

    const rows = data.verifiers;
    $("verifiers").replaceChildren(rows.length ? DE.table([
      {label: "verifier"}, {label: "kind"}, {label: "scope"}, {label: "items", num: true},
      {label: "agreement", num: true}, {label: "precision", num: true}, {label: "recall", num: true},
      {label: "AI accepts", num: true}, {label: "people accept", num: true},
    ], rows.map(v => [
      v.verifier, v.model_kind === "mask_verifier" ? "MV" : "EV", v.scope, v.n, DE.fmtPct(v.agreement),
      DE.fmtPct(v.precision), DE.fmtPct(v.recall), v.ai_accepts, v.human_accepts,
    ])) : DE.el("p", {class: "empty", text: "No item has both an AI and a human verdict yet."}));
    renderVideo(data.video_proposers || []);
    renderCoverage(data.concepts || []);
    $("updated").textContent = `updated ${new Date(data.generated_at).toLocaleTimeString()}`;
  }

  // video proposers (engine/services/video_metrics.py): cgF1 / pmF1 / IL_MCC per version on video pairs
  function renderVideo(rows) {
    $("video-proposers").replaceChildren(rows.length ? DE.table([
      {label: "proposer version"}, {label: "promoted"}, {label: "pairs", num: true}, {label: "positive", num: true},
      {label: "masklets", num: true}, {label: "cgF1", num: true}, {label: "pmF1", num: true},
      {label: "IL_MCC", num: true}, {label: "IL tp/fp/fn/tn"},
    ], rows.map(p => [
      p.model, p.promoted ? "yes" : "", p.pairs, p.positive_pairs, p.masklets, num(p.cg_f1), num(p.pm_f1, 3),
      num(p.il_mcc, 3), `${p.il_counts.tp}/${p.il_counts.fp}/${p.il_counts.fn}/${p.il_counts.tn}`,
    ])) : DE.el("p", {class: "empty", text: "No human-verified exhaustive video pair or confirmed negative yet."}));
  }

  // concept coverage (engine/services/concept_stats.py): accepted masks per concept, sorted descending
  const COVERAGE_BARS = 40;
  function renderCoverage(rows) {
    const shown = rows.slice(0, COVERAGE_BARS);
    const [open, full] = [0, 3].map(cls => ({name: cls ? "saturated" : "accepted masks", cls,
      values: shown.map(c => (c.saturated === Boolean(cls) ? c.accepted_masks : null))}));
    Charts.bars($("coverage-chart"), {
      labels: shown.map(c => c.text), series: [open, full], format: v => String(Math.round(v)), integer: true,
      every: Math.max(1, Math.ceil(shown.length / 8)),
    });
    $("coverage").replaceChildren(rows.length ? DE.table([
      {label: "concept"}, {label: "accepted masks", num: true}, {label: "positive pairs", num: true},
      {label: "negatives", num: true}, {label: "acceptance", num: true}, {label: "agreement", num: true},
      {label: "compared", num: true}, {label: "human decided", num: true}, {label: "saturated"},
    ], rows.map(c => [
      c.text, c.accepted_masks, c.positive_pairs, c.negative_pairs, DE.fmtPct(c.model_acceptance),
      DE.fmtPct(c.agreement), c.compared, c.human_decided, c.saturated ? "yes" : "",
    ])) : DE.el("p", {class: "empty", text: "No concept has a pair yet."}));
  }

  function num(v, digits = 1) {
    return v === null || v === undefined ? "—" : Number(v).toFixed(digits);
  }

  // GET /api/v1/dashboard/quality: cgF1 / pmF1 / IL_MCC per proposer version, acceptance per version.
  function renderQuality(q) {
    const props = q.proposers;
    Charts.bars($("quality-chart"), {
      labels: props.map(p => p.model),
      series: [{name: "cgF1", values: props.map(p => p.cg_f1)},
               {name: "pmF1 × 100", values: props.map(p => p.pm_f1 === null ? null : 100 * p.pm_f1)},
               {name: "IL_MCC × 100", values: props.map(p => p.il_mcc === null ? null : 100 * p.il_mcc)}],
      format: v => num(v, 0),
    });
    $("proposers").replaceChildren(props.length ? DE.table([
      {label: "proposer version"}, {label: "promoted"}, {label: "pairs", num: true}, {label: "positive", num: true},
      {label: "cgF1", num: true}, {label: "pmF1", num: true}, {label: "IL_MCC", num: true},
    ], props.map(p => [
      p.model, p.promoted ? "yes" : "", p.pairs, p.positive_pairs, num(p.cg_f1), num(p.pm_f1, 3), num(p.il_mcc, 3),
    ])) : DE.el("p", {class: "empty", text: "No human-verified exhaustive pair or confirmed negative yet."}));
    const acc = q.acceptance;
    $("acceptance").replaceChildren(acc.length ? DE.table([
      {label: "model version"}, {label: "kind"}, {label: "promoted"}, {label: "outputs", num: true},
      {label: "decided / routed", num: true}, {label: "accepted", num: true}, {label: "acceptance", num: true},
    ], acc.map(a => [
      a.model, a.kind, a.promoted ? "yes" : "", a.outputs, a.decided, a.accepted, DE.fmtPct(a.acceptance),
    ])) : DE.el("p", {class: "empty", text: "No model output yet."}));
  }

  async function load() {
    try {
      const hours = encodeURIComponent($("hours").value);
      const [data, quality] = await Promise.all([DE.api("GET", `/dashboard?hours=${hours}`),
                                                 DE.api("GET", `/dashboard/quality?hours=${hours}`)]);
      $("error").textContent = "";
      render(data);
      renderQuality(quality);
    } catch (err) {
      $("error").textContent = err.status === 403 ? "Your role cannot see the dashboard." : `Could not load: ${DE.errorText(err)}`;
    }
    document.body.dataset.state = "ready";
  }

  document.addEventListener("DOMContentLoaded", async () => {
    $("hours").addEventListener("change", load);
    $("refresh").addEventListener("click", load);
    try { await DE.nav("/dashboard"); } catch (err) { return; }
    await load();
    timer = setInterval(() => { if (!document.hidden) load(); }, 30000);
  });
  window.addEventListener("pagehide", () => clearInterval(timer));
})();
