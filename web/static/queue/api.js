// The API client of the queue page: JSON requests to /api/v1 with the CSRF header, and every failure
// as an ApiError that carries the HTTP status (0 when the server was not reached), the error code the
// server sent (X-Error-Code, or the body's "code") and a readable message. Pure: fetch, the CSRF token
// and what to do on 401 are given to createApi, so the module runs in Node's test runner as well.

/** The kind of a failure, from its HTTP status: what the caller decides on, never the message text. */
export function errorKind(status) {
  if (status === 0) return "network";
  if (status === 401) return "unauthorized";
  if (status === 403) return "forbidden";
  if (status === 404) return "not_found";
  if (status === 409) return "conflict";
  if (status === 400 || status === 422) return "invalid";
  if (status === 429) return "rate_limited";
  if (status >= 500) return "server";
  return "http";
}

export class ApiError extends Error {
  /** status: the HTTP status (0: no answer); code: the server's error code or null; errors: [{loc, msg}] */
  constructor(message, {status = 0, code = null, errors = []} = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.errors = errors;
    this.kind = errorKind(status);
  }

  /** Asking again later may succeed: the server was not reached, failed, or asked to slow down. */
  get retryable() { return ["network", "server", "rate_limited"].includes(this.kind); }
}

// The error contract: {detail, code} (+ errors [{loc, msg}] on 422: shown as "field: why; …").
function describe(data, fallback) {
  if (Array.isArray(data?.errors) && data.errors.length) {
    return data.errors.map((d) => [(d.loc || []).slice(1).join("."), d.msg].filter(Boolean).join(": ")).join("; ");
  }
  if (data?.detail === undefined) return fallback;
  return typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
}

async function failure(resp) {
  let data = null;
  try { data = await resp.json(); } catch { /* not JSON */ }
  const code = resp.headers.get("X-Error-Code") || (typeof data?.code === "string" ? data.code : null);
  const message = describe(data, resp.statusText || `HTTP ${resp.status}`);
  return new ApiError(message, {status: resp.status, code, errors: Array.isArray(data?.errors) ? data.errors : []});
}

/**
 * A request function bound to the page:
 *   request(method, path, body?, {allow: [statuses answered without an error], keepalive}) → JSON | null | Response
 * csrfToken() gives the token of the signed-in user (sent with every state-changing request);
 * onUnauthorized() runs on a 401 (the page sends the user to the log-in page) before the ApiError is thrown.
 */
export function createApi({fetch = globalThis.fetch, base = "/api/v1", csrfToken = () => null,
  onUnauthorized = () => {}} = {}) {
  return async function request(method, path, body, {allow = [], keepalive = false} = {}) {
    const headers = {"Accept": "application/json"};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const token = csrfToken();
    if (token && !["GET", "HEAD"].includes(method)) headers["X-CSRF-Token"] = token;
    let resp;
    try {
      resp = await fetch(base + path, {method, headers, credentials: "same-origin", keepalive,
        body: body === undefined ? undefined : JSON.stringify(body)});
    } catch (err) {
      throw new ApiError(`the server cannot be reached (${err?.message || err})`);
    }
    if (!resp.ok && !allow.includes(resp.status)) {
      const err = await failure(resp);
      if (err.kind === "unauthorized") onUnauthorized(err);
      throw err;
    }
    if (resp.status === 204) return null;
    const type = resp.headers.get("content-type") || "";
    return type.includes("application/json") ? resp.json() : resp;
  };
}
