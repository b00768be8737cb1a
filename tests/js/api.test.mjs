// web/static/queue/api.js: every failure is an ApiError with the HTTP status and a kind to decide on.
import assert from "node:assert/strict";
import {test} from "node:test";

import {ApiError, createApi, errorKind} from "../../web/static/queue/api.js";

function stubFetch(respond) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({url, init});
    return respond(url, init);
  };
  return {fetch, calls};
}

const json = (status, data, headers = {}) => new Response(JSON.stringify(data), {
  status, headers: {"content-type": "application/json", ...headers}});

test("a JSON answer is returned; the CSRF token goes with POST, not with GET", async () => {
  const {fetch, calls} = stubFetch(() => json(200, {id: 7}));
  const request = createApi({fetch, csrfToken: () => "tok"});
  assert.deepEqual(await request("POST", "/tasks/next", {kinds: ["correct"]}), {id: 7});
  await request("GET", "/auth/me");
  assert.equal(calls[0].url, "/api/v1/tasks/next");
  assert.equal(calls[0].init.method, "POST");
  assert.equal(calls[0].init.headers["X-CSRF-Token"], "tok");
  assert.equal(calls[0].init.headers["Content-Type"], "application/json");
  assert.equal(calls[0].init.body, JSON.stringify({kinds: ["correct"]}));
  assert.equal(calls[1].init.headers["X-CSRF-Token"], undefined);
  assert.equal(calls[1].init.body, undefined);
});

test("204 answers null", async () => {
  const {fetch} = stubFetch(() => new Response(null, {status: 204}));
  assert.equal(await createApi({fetch})("POST", "/tasks/1/release"), null);
});

test("401 carries its status and kind, and calls onUnauthorized before throwing", async () => {
  const {fetch} = stubFetch(() => json(401, {detail: "not signed in", code: "unauthorized"},
    {"X-Error-Code": "unauthorized"}));
  const seen = [];
  const request = createApi({fetch, onUnauthorized: (err) => seen.push(err.status)});
  await assert.rejects(request("POST", "/tasks/1/verdict", {}), (err) => {
    assert.ok(err instanceof ApiError);
    assert.equal(err.status, 401);
    assert.equal(err.kind, "unauthorized");
    assert.equal(err.code, "unauthorized");
    assert.equal(err.retryable, false);
    return true;
  });
  assert.deepEqual(seen, [401]);
});

test("the error code comes from X-Error-Code, else from the body", async () => {
  const {fetch} = stubFetch((url) => (url.endsWith("/a")
    ? json(409, {detail: "lease lost"}, {"X-Error-Code": "lease_lost"})
    : json(409, {detail: "too many", code: "too_many_leases"})));
  const request = createApi({fetch});
  await assert.rejects(request("POST", "/a"), {status: 409, kind: "conflict", code: "lease_lost", message: "lease lost"});
  await assert.rejects(request("POST", "/b"), {status: 409, code: "too_many_leases", message: "too many"});
});

test("422 validation errors read as 'field: why; …'", async () => {
  const {fetch} = stubFetch(() => json(422, {detail: "invalid", code: "invalid",
    errors: [{loc: ["body", "label"], msg: "not a label"}, {loc: ["body"], msg: "bad"}]}));
  await assert.rejects(createApi({fetch})("POST", "/x", {}), (err) => {
    assert.equal(err.kind, "invalid");
    assert.equal(err.message, "label: not a label; bad");
    assert.equal(err.errors.length, 2);
    return true;
  });
});

test("5xx and a body that is not JSON: the status text is the message, and it may be retried", async () => {
  const {fetch} = stubFetch(() => new Response("oops", {status: 503, statusText: "Service Unavailable"}));
  await assert.rejects(createApi({fetch})("GET", "/x"),
    {status: 503, kind: "server", message: "Service Unavailable", retryable: true});
});

test("a fetch that fails is a network error with status 0", async () => {
  const fetch = async () => { throw new TypeError("Failed to fetch"); };
  await assert.rejects(createApi({fetch})("POST", "/x", {}), (err) => {
    assert.ok(err instanceof ApiError);
    assert.equal(err.status, 0);
    assert.equal(err.kind, "network");
    assert.equal(err.retryable, true);
    assert.match(err.message, /Failed to fetch/);
    return true;
  });
});

test("allowed statuses answer without an error", async () => {
  const {fetch} = stubFetch(() => new Response(null, {status: 409}));
  const out = await createApi({fetch})("POST", "/tasks/1/release", undefined, {allow: [409], keepalive: true});
  assert.equal(out.status, 409);
});

test("errorKind names every status class", () => {
  assert.deepEqual([0, 400, 401, 403, 404, 409, 418, 422, 429, 500, 502].map(errorKind),
    ["network", "invalid", "unauthorized", "forbidden", "not_found", "conflict", "http", "invalid", "rate_limited",
      "server", "server"]);
  assert.equal(new ApiError("x", {status: 429}).retryable, true);
  assert.equal(new ApiError("x", {status: 404}).retryable, false);
});
