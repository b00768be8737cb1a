// Admin page: people (admins), the caller's API tokens (admins, ML engineers) and gold items
// (admins, reviewers). User names, token names and labels are shown as text only.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const KINDS = ["verify_mask", "check_exhaustivity", "correct"];
  const ROLES = ["annotator", "reviewer", "ml_engineer", "admin"];
  let me = null;

  function say(text) { $("notice").textContent = text; $("error").textContent = ""; }
  function fail(prefix, err) { $("notice").textContent = ""; $("error").textContent = `${prefix}: ${DE.errorText(err)}`; }

  function kindBoxes(selected, onchange) {
    return KINDS.map(kind => {
      const box = DE.el("input", {type: "checkbox", value: kind});
      box.checked = Array.isArray(selected) && selected.includes(kind);
      if (onchange) box.addEventListener("change", onchange);
      return DE.el("label", {}, [box, ` ${kind.replace("_", " ")}`]);
    });
  }

  function ticked(container) {
    const kinds = [...container.querySelectorAll("input[type=checkbox]:checked")].map(b => b.value);
    return kinds.length ? kinds : null;  // none ticked: every kind the role allows
  }

  // ---------------------------------------------------------------------------- people
  async function patchUser(username, body, what) {
    try {
      await DE.api("PATCH", `/users/${encodeURIComponent(username)}`, body);
      say(`${username}: ${what}.`);
    } catch (err) {
      fail(`Could not change ${username}`, err);
    }
    await loadUsers();
  }

  async function loadUsers() {
    let users;
    try { users = await DE.api("GET", "/users"); } catch (err) { fail("Could not list people", err); return; }
    const rows = users.map(u => {
      const role = DE.el("select", {"aria-label": `role of ${u.username}`},
        ROLES.map(r => DE.el("option", {value: r, text: r.replace("_", " ")})));
      role.value = u.role;
      role.addEventListener("change", () => patchUser(u.username, {role: role.value}, `role ${role.value}`));
      const kinds = DE.el("span", {class: "kinds"});
      kinds.append(...kindBoxes(u.task_kinds, () => {
        const chosen = ticked(kinds);
        patchUser(u.username, {task_kinds: chosen}, chosen ? `task kinds ${chosen.join(", ")}` : "every task kind");
      }));
      const toggle = DE.el("button", {type: "button", class: u.is_active ? "danger" : "",
        text: u.is_active ? "Disable" : "Enable"});
      toggle.addEventListener("click", () => patchUser(u.username, {is_active: !u.is_active},
                                                        u.is_active ? "disabled" : "enabled"));
      if (me && u.username === me.username) { role.disabled = true; toggle.disabled = true; }
      return [u.username, role, u.is_active ? "active" : "disabled", kinds, DE.fmtTime(u.created_at), toggle];
    });
    $("users").replaceChildren(DE.table(
      [{label: "user"}, {label: "role"}, {label: "state"}, {label: "task kinds (none: all)"}, {label: "created"}, {label: ""}],
      rows));
    $("users").querySelectorAll("tbody tr").forEach((tr, i) => { tr.dataset.username = users[i].username; });
  }

  async function createUser(event) {
    event.preventDefault();
    const body = {username: $("new-username").value.trim(), password: $("new-password").value,
                  role: $("new-role").value, task_kinds: ticked($("new-kinds"))};
    if (body.username.length < 2) { fail("Could not add", new Error("the user name needs 2 characters or more")); return; }
    if (body.password.length < 10) { fail("Could not add", new Error("the password needs 10 characters or more")); return; }
    try {
      const user = await DE.api("POST", "/users", body);
      say(`Added ${user.username} (${user.role}).`);
      $("user-form").reset();
    } catch (err) {
      fail("Could not add", err);
    }
    await loadUsers();
  }

  // ---------------------------------------------------------------------------- tokens
  async function loadTokens() {
    let tokens;
    try { tokens = await DE.api("GET", "/auth/tokens"); } catch (err) { fail("Could not list tokens", err); return; }
    $("tokens").replaceChildren(tokens.length ? DE.table(
      [{label: "name"}, {label: "starts with"}, {label: "created"}, {label: "expires"}, {label: "last used"}, {label: "state"}, {label: ""}],
      tokens.map(t => {
        const revoke = DE.el("button", {type: "button", class: "danger", text: "Revoke"});
        revoke.disabled = Boolean(t.revoked_at);
        revoke.addEventListener("click", async () => {
          try { await DE.api("DELETE", `/auth/tokens/${t.id}`); say(`Token ${t.name} revoked.`); } catch (err) { fail("Could not revoke", err); }
          loadTokens();
        });
        return [t.name, `${t.prefix}…`, DE.fmtTime(t.created_at), t.expires_at ? DE.fmtTime(t.expires_at) : "never",
                DE.fmtTime(t.last_used_at), t.revoked_at ? "revoked" : "active", revoke];
      })) : DE.el("p", {class: "empty", text: "No tokens."}));
  }

  async function createToken(event) {
    event.preventDefault();
    const name = $("token-name").value.trim();
    const days = $("token-days").value ? Number($("token-days").value) : null;
    if (!name) { fail("Could not make the token", new Error("give it a name")); return; }
    try {
      const made = await DE.api("POST", "/auth/tokens", {name, expires_days: days});
      $("new-token-value").textContent = made.token;  // shown once; not kept anywhere else
      $("new-token").hidden = false;
      $("token-form").reset();
      say(`Token ${made.name} made.`);
    } catch (err) {
      fail("Could not make the token", err);
    }
    loadTokens();
  }

  async function copyToken() {
    const text = $("new-token-value").textContent;
    try {
      await navigator.clipboard.writeText(text);
      say("Token copied.");
    } catch (err) {
      const range = document.createRange();
      range.selectNodeContents($("new-token-value"));
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      say("Select and copy the token (Ctrl+C).");
    }
  }

  function hideToken() {
    $("new-token-value").textContent = "";
    $("new-token").hidden = true;
  }

  // ------------------------------------------------------------------------------ gold
  async function loadGold() {
    let items;
    try { items = await DE.api("GET", "/gold"); } catch (err) { fail("Could not list gold items", err); return; }
    $("gold").replaceChildren(items.length ? DE.table(
      [{label: "id", num: true}, {label: "kind"}, {label: "pair", num: true}, {label: "mask", num: true}, {label: "answer"},
       {label: "state"}, {label: "answered", num: true}, {label: "correct", num: true}, {label: "accuracy", num: true}, {label: ""}],
      items.map(g => {
        const retire = DE.el("button", {type: "button", class: "danger", text: "Retire"});
        retire.disabled = !g.is_active;
        retire.addEventListener("click", async () => {
          try { await DE.api("DELETE", `/gold/${g.id}`); say(`Gold item ${g.id} retired.`); } catch (err) { fail("Could not retire", err); }
          loadGold();
        });
        return [g.id, g.kind.replace("_", " "), g.pair_id, g.mask_id ?? "—", g.answer, g.is_active ? "active" : "retired",
                g.answered, g.correct, DE.fmtPct(g.answered ? g.correct / g.answered : null), retire];
      })) : DE.el("p", {class: "empty", text: "No gold items yet."}));
  }

  async function createGold(event) {
    event.preventDefault();
    const taskId = Number($("gold-task").value);
    if (!Number.isInteger(taskId) || taskId < 1) { fail("Could not add", new Error("give the id of a done task")); return; }
    const body = {task_id: taskId};
    if ($("gold-answer").value) body.answer = $("gold-answer").value;
    try {
      const item = await DE.api("POST", "/gold", body);
      say(`Gold item ${item.id} added (answer ${item.answer}).`);
      $("gold-form").reset();
    } catch (err) {
      fail("Could not add the gold item", err);
    }
    loadGold();
  }

  document.addEventListener("DOMContentLoaded", async () => {
    $("new-kinds").append(...kindBoxes(null));
    $("user-form").addEventListener("submit", createUser);
    $("token-form").addEventListener("submit", createToken);
    $("copy-token").addEventListener("click", copyToken);
    $("hide-token").addEventListener("click", hideToken);
    $("gold-form").addEventListener("submit", createGold);
    try { me = await DE.nav("/admin"); } catch (err) { return; }
    const role = me.role;
    const show = {users: role === "admin", tokens: role === "admin" || role === "ml_engineer",
                  gold: role === "admin" || role === "reviewer"};
    $("users-card").hidden = !show.users;
    $("tokens-card").hidden = !show.tokens;
    $("gold-card").hidden = !show.gold;
    $("nothing").hidden = show.users || show.tokens || show.gold;
    if (role === "reviewer") $("title").textContent = "Gold items";
    await Promise.all([show.users && loadUsers(), show.tokens && loadTokens(), show.gold && loadGold()]);
    document.body.dataset.state = "ready";
  });
})();
