// Shared by every page: API calls with the CSRF header, the signed-in user, small DOM helpers.
// Model output (captions, phrases) is untrusted: put it in the page with text nodes only
// (el(..., {text}) or node.textContent), never as HTML.
"use strict";

const DE = (() => {
  let me = null;
  const logoutHooks = []; // run (awaited) before the session ends, e.g. to give leases back

  // keepalive: the request outlives the page (pagehide); small bodies only.
  async function api(method, path, body, {allow = [], keepalive = false} = {}) {
    const headers = {"Accept": "application/json"};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (me && me.csrf_token && !["GET", "HEAD"].includes(method)) headers["X-CSRF-Token"] = me.csrf_token;
    const resp = await fetch("/api/v1" + path, {
      method, headers, credentials: "same-origin", keepalive,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (resp.status === 401 && !path.startsWith("/auth/login")) {
      location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
      const err = new Error("not signed in");
      err.status = 401;
      err.code = "unauthorized";
      throw err;
    }
    if (!resp.ok && !allow.includes(resp.status)) {
      let detail = resp.statusText;
      // the error contract: {detail, code} (+ errors [{loc, msg}] on 422: shown as "field: why; …")
      try {
        const data = await resp.json();
        detail = Array.isArray(data.errors) && data.errors.length
          ? data.errors.map(d => [(d.loc || []).slice(1).join("."), d.msg].filter(Boolean).join(": ")).join("; ")
          : (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail));
      } catch (e) { /* not JSON */ }
      const err = new Error(detail);
      err.status = resp.status;
      err.code = resp.headers.get("X-Error-Code");
      throw err;
    }
    if (resp.status === 204) return null;
    const type = resp.headers.get("content-type") || "";
    return type.includes("application/json") ? resp.json() : resp;
  }

  async function whoami() {
    if (!me) me = await api("GET", "/auth/me");
    return me;
  }

  function setMe(value) { me = value; }

  // el("div", {class: "x", text: "safe text", onclick: fn}, [children])
  function el(tag, attrs = {}, children = []) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, String(value));
    }
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  }

  function uuid() {
    return crypto.randomUUID ? crypto.randomUUID()
      : Array.from(crypto.getRandomValues(new Uint8Array(16)), b => b.toString(16).padStart(2, "0")).join("");
  }

  // The navigation bar: links the role may use, the user, log out.
  async function nav(active) {
    const user = await whoami();
    const links = {
      admin: [["/queue", "Queue"], ["/dashboard", "Dashboard"], ["/jobs", "Jobs"], ["/admin", "Admin"]],
      annotator: [["/queue", "Queue"]],
      reviewer: [["/queue", "Queue"], ["/admin", "Gold"]],
      ml_engineer: [["/dashboard", "Dashboard"], ["/jobs", "Jobs"]],
    }[user.role] || [];
    const bar = document.getElementById("nav");
    if (!bar) return user;
    bar.replaceChildren(
      el("span", {class: "brand", text: "Data Engine"}),
      ...links.map(([href, label]) => el("a", {href, text: label, class: href === active ? "active" : ""})),
      el("span", {class: "spacer"}),
      el("span", {class: "who", text: `${user.username} (${user.role})`}),
      el("button", {type: "button", id: "logout", text: "Log out", onclick: async () => {
        await Promise.allSettled(logoutHooks.map((fn) => fn()));
        await api("POST", "/auth/logout"); location.assign("/login");
      }}),
    );
    return user;
  }

  function onLogout(fn) { logoutHooks.push(fn); }

  return {api, whoami, setMe, el, uuid, nav, onLogout};
})();

// Operator pages (dashboard, jobs, admin): small formatting and table helpers. Cells are text nodes
// (or nodes the caller built); never HTML.
DE.fmtTime = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
DE.fmtPct = (x) => (x === null || x === undefined ? "—" : `${(100 * x).toFixed(1)}%`);
DE.fmtNum = (x, digits = 0) => (x === null || x === undefined ? "—" : Number(x).toFixed(digits));
// An API error as one readable line (FastAPI validation errors are lists of {loc, msg}).
DE.errorText = (err) => {
  try {
    const detail = JSON.parse(err.message);
    if (Array.isArray(detail)) return detail.map(d => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
  } catch (e) { /* a plain message */ }
  return err.message || String(err);
};
// table([{label, num?}], rows of cells) → <table class="data">; a cell is text or a Node.
DE.table = (columns, rows) => DE.el("table", {class: "data"}, [
  DE.el("thead", {}, [DE.el("tr", {}, columns.map(c => DE.el("th", {text: c.label, class: c.num ? "num" : ""})))]),
  DE.el("tbody", {}, rows.map(cells => DE.el("tr", {}, cells.map((cell, i) =>
    DE.el("td", {class: columns[i] && columns[i].num ? "num" : ""}, [cell instanceof Node ? cell : String(cell ?? "—")]))))),
]);
