// The SDK (the shipped dist/herald.mjs) against a real herald serve --dev,
// over WebSocket (Node 20 has no WebSocket of its own: the ws package
// stands in for it, as the SDK's WebSocket option allows).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { Herald } from "../dist/herald.mjs";
import { Server, memory, token, until } from "./server.mjs";

/** client makes a Herald client of srv for user, recording its events. */
function client(srv, user, opts = {}) {
  const h = new Herald(srv.ws, { params: { user }, WebSocket, storage: false, ...opts });
  const rec = { msgs: [], states: [], errors: [], gaps: [], recalls: [] };
  h.on("message", (m) => rec.msgs.push(m));
  h.on("state", (s, info) => rec.states.push(info ? { s, ...info } : { s }));
  h.on("error", (e) => rec.errors.push(e));
  h.on("gap", (g) => rec.gaps.push(g));
  h.on("recall", (r) => rec.recalls.push(r));
  return { h, rec, connected: () => until(() => h.connected, user + " connected") };
}

const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;

describe("against a dev server", () => {
  const srv = new Server();
  before(() => srv.start());
  after(() => srv.close());

  test("state machine: connecting, connected, a user push, close leaves no timer", async () => {
    const before = timers();
    const { h, rec, connected } = client(srv, "sm");
    const off = h.on("message", () => {});
    assert.equal(typeof off, "function");
    h.connect();
    await connected();
    assert.deepEqual(rec.states.map((s) => s.s), ["connecting", "connected"]);
    await srv.push({ to: { users: ["sm"] }, data: { text: "hi" } });
    await until(() => rec.msgs.length === 1, "the push");
    assert.deepEqual(rec.msgs[0].data, { text: "hi" });
    off();
    h.close();
    assert.deepEqual(rec.states.at(-1), { s: "disconnected", code: 1000, reason: "closed by the client" });
    assert.equal(h.timer ?? h.ping, undefined);
    await until(() => timers() === before, "no timer left running"); // the ws package's close timer ends too
  });

  test("join, room push, send between users, leave; a refused join rejects", async () => {
    const a = client(srv, "ja");
    const b = client(srv, "jb");
    a.h.connect();
    b.h.connect();
    await Promise.all([a.connected(), b.connected()]);
    await a.h.join("lobby");
    await srv.push({ to: { rooms: ["lobby"] }, data: "room" });
    await until(() => a.rec.msgs.some((m) => m.data === "room"), "the room push");
    await b.h.send({ rooms: ["lobby"] }, { text: "from b" });
    const m = await until(() => a.rec.msgs.find((m) => m.from === "jb"), "b's send");
    assert.deepEqual(m.data, { text: "from b" });
    await a.h.leave("lobby");
    await assert.rejects(a.h.join("bad\u0001room"), (e) => e.code === 4007);
    assert.ok(a.rec.errors.some((e) => e.code === 4007));
    a.h.close();
    b.h.close();
    await assert.rejects(b.h.send({ users: ["ja"] }, 1), (e) => e.code === 1006);
  });

  test("de-duplication: one message per id when a history room and the user both match", async () => {
    const { h, rec, connected } = client(srv, "dd");
    h.connect();
    await connected();
    await h.join("hist-dd");
    const { id } = await srv.push({ to: { users: ["dd"], rooms: ["hist-dd"] }, data: 1, offline: true });
    await srv.push({ to: { users: ["dd"] }, data: "fence" });
    await until(() => rec.msgs.some((m) => m.data === "fence"), "the fence push");
    assert.equal(rec.msgs.filter((m) => m.id === id).length, 1);
    h.close();
  });

  test("kicked (4002): no reconnect", async () => {
    const { h, rec, connected } = client(srv, "kick");
    h.connect();
    await connected();
    const r = await srv.api("DELETE", "/v1/users/kick/conns");
    assert.equal(r.status, 204);
    await until(() => rec.states.at(-1).s === "disconnected", "the kick");
    assert.equal(rec.states.at(-1).code, 4002);
    assert.equal(rec.states.at(-1).retryIn, undefined);
    assert.ok(rec.errors.some((e) => e.code === 4002));
    // A ping proves the server is still up; the kicked client stays down.
    const fence = client(srv, "kick-fence");
    fence.h.connect();
    await fence.connected();
    fence.h.close();
    assert.equal(rec.states.filter((s) => s.s === "connecting").length, 1);
    assert.equal(h.stopped, true);
    assert.equal(h.timer, undefined);
  });

  test("a bad URL surfaces an error event and does not reconnect", () => {
    const errors = [];
    const h = new Herald("not a url", { WebSocket, storage: false });
    h.on("error", (e) => errors.push(e));
    h.connect();
    assert.deepEqual(errors, [{ code: 0, reason: "invalid URL" }]);
    assert.equal(h.timer, undefined);
  });
});

describe("resume across a server restart", () => {
  const srv = new Server();
  before(() => srv.start());
  after(() => srv.close());

  test("exact stored messages, each once, in seq order; rooms rejoined from their last pos", async () => {
    const store = memory();
    const { h, rec, connected } = client(srv, "rs", { storage: store });
    h.connect();
    await connected();
    await h.join("hist-rs");
    const ids = [];
    // push retries one id until the API accepts it (the server may be down).
    const push = async (id, to) => {
      const body = { id, to, data: id, ...(to.users && { offline: true }) };
      await until(() => srv.push(body).then(() => true, (e) => (e instanceof TypeError ? false : Promise.reject(e))), "push " + id, 60000);
      ids.push(id);
    };
    for (let i = 1; i <= 5; i++) await push("u" + i, { users: ["rs"] });
    await push("r1", { rooms: ["hist-rs"] });
    await until(() => rec.msgs.length === 6, "six messages");
    await srv.restart();
    for (let i = 6; i <= 10; i++) await push("u" + i, { users: ["rs"] });
    await until(() => rec.msgs.filter((m) => m.seq).length === 10, "ten stored messages", 60000);
    await until(() => h.rooms && h.ops.length === 0 && h.connected, "the rejoin");
    await push("r2", { rooms: ["hist-rs"] });
    await until(() => rec.msgs.some((m) => m.id === "r2"), "the room push after the restart");
    const stored = rec.msgs.filter((m) => m.seq);
    assert.deepEqual(stored.map((m) => m.id), ids.filter((i) => i[0] === "u"));
    assert.deepEqual(stored.map((m) => m.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.deepEqual(rec.msgs.filter((m) => m.room).map((m) => m.pos), [1, 2]);
    assert.ok(rec.states.some((s) => s.s === "disconnected" && s.retryIn >= 0));
    h.close();

    // A reload: a new client with the same storage resumes after seq 10.
    const again = client(srv, "rs", { storage: store });
    again.h.connect();
    await again.connected();
    await push("u11", { users: ["rs"] });
    await until(() => again.rec.msgs.length === 1, "u11");
    assert.equal(again.rec.msgs[0].seq, 11);
    again.h.close();
  });

  test("backoff: each wait within 0.5 s · 2ⁿ while the server is down", async () => {
    const { h, rec, connected } = client(srv, "bo");
    h.connect();
    await connected();
    await srv.stop("SIGKILL");
    await until(() => rec.states.filter((s) => s.s === "disconnected").length >= 4, "four retries", 30000);
    const waits = rec.states.filter((s) => s.s === "disconnected").map((s) => s.retryIn);
    waits.slice(0, 4).forEach((w, n) => assert.ok(w >= 0 && w <= 500 * 2 ** n, `wait ${n} was ${w} ms`));
    await srv.start();
    await until(() => h.connected, "the reconnect", 30000);
    h.close();
  });
});

describe("tokens (close 4001)", () => {
  const srv = new Server(["--app", "shop", "--api-key", "key-0123456789abcdef", "--token-secret", "secret-0123456789abcdef"]);
  before(() => srv.start());
  after(() => srv.close());
  const good = () => token("secret-0123456789abcdef", { sub: "tk", app: "shop" });

  test("a refused token string: error 4001, no reconnect", async () => {
    const { h, rec } = client(srv, "tk", { token: "not-a-token", params: {} });
    h.connect();
    await until(() => h.stopped, "the stop");
    assert.deepEqual(rec.errors.map((e) => e.code), [4001]);
    assert.equal(rec.states.filter((s) => s.s === "connecting").length, 1);
    assert.equal(rec.states.at(-1).code, 4001);
    assert.equal(h.timer, undefined);
  });

  test("a token function: one fresh token after 4001, then stop", async () => {
    let calls = 0;
    const { h, rec } = client(srv, "tk", { token: async () => (calls++, "bad"), params: {} });
    h.connect();
    await until(() => h.stopped, "the stop");
    assert.equal(calls, 2);
    assert.equal(rec.states.filter((s) => s.s === "connecting").length, 2);
    assert.equal(h.kind, 0, "a 4001 must not move to the SSE transport");
  });

  test("a token function whose fresh token is good connects", async () => {
    let calls = 0;
    const { h, rec, connected } = client(srv, "tk", { token: () => (calls++ ? good() : "bad"), params: {} });
    h.connect();
    await connected();
    assert.equal(rec.errors[0].code, 4001);
    srv.headers = { authorization: "Bearer key-0123456789abcdef" };
    await srv.push({ to: { users: ["tk"] }, data: "ok" });
    await until(() => rec.msgs.length === 1, "the push");
    h.close();
  });
});
