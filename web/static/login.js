// The log-in page: POST /auth/login, then go to ?next= (a same-origin path only) or the role's page.
// A visitor who is signed in already (GET / comes here) goes on at once. Admins and ML engineers land
// on the dashboard: the queue page leases a task as it opens, which an admin seldom wants.
"use strict";

// A redirect target we accept: a path on this site ("/x"), never "//host", "/\host" or a URL.
function safeNext(raw) {
  if (typeof raw !== "string" || !raw.startsWith("/") || raw.startsWith("//") || raw.startsWith("/\\")) return null;
  if (/[\u0000-\u001f\u007f\\]/.test(raw)) return null;
  let url;
  try { url = new URL(raw, location.origin); } catch (e) { return null; }
  if (url.origin !== location.origin || url.pathname === "/login") return null;
  return url.pathname + url.search + url.hash;
}

function homeFor(role) {
  return role === "ml_engineer" || role === "admin" ? "/dashboard" : "/queue";
}

// The signed-in user, or null. A plain fetch: DE.api would answer a 401 by coming back here.
async function signedIn() {
  try {
    const resp = await fetch("/api/v1/auth/me", {credentials: "same-origin", headers: {"Accept": "application/json"}});
    return resp.ok ? await resp.json() : null;
  } catch (e) {
    return null;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("login-form");
  const user = document.getElementById("username");
  const password = document.getElementById("password");
  const error = document.getElementById("login-error");
  const submit = document.getElementById("login-submit");
  const next = safeNext(new URLSearchParams(location.search).get("next"));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    if (!user.value.trim() || !password.value) {
      error.textContent = "Enter your user name and password.";
      (user.value.trim() ? password : user).focus();
      return;
    }
    submit.disabled = true;
    document.body.dataset.state = "busy";
    try {
      const me = await DE.api("POST", "/auth/login", {username: user.value.trim(), password: password.value});
      DE.setMe(me);
      location.replace(next || homeFor(me.role));
      return;
    } catch (err) {
      if (err.status === 401) error.textContent = "Wrong user name or password.";
      else if (err.status === 429) error.textContent = `Too many attempts. ${err.message}`;
      else if (err.status === 422) error.textContent = "Enter your user name and password.";
      else if (err.status) error.textContent = `Sign-in failed: ${err.message}`;
      else error.textContent = "Cannot reach the server. Check your connection and try again.";
      password.value = "";
      password.focus();
    }
    submit.disabled = false;
    document.body.dataset.state = "ready";
  });
  signedIn().then((me) => {
    if (me && me.role) location.replace(next || homeFor(me.role));
    else document.body.dataset.state = "ready";
  });
});
