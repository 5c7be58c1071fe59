// Pusher Channels compatibility with the real, unchanged clients: pusher-js
// (its Node build) and the official `pusher` Node server SDK against a
// spawned `herald serve --dev --pusher-*`. Every wait is on a condition or
// an event, never a fixed sleep.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { WebSocketServer } from "ws";
import { APP, Server, client as kitClient, connected, events, sdk as kitSdk, subscribe, until } from "./kit.mjs";

const srv = new Server(["--dev", "--pusher-app-id", APP.appId, "--pusher-key", APP.key, "--pusher-secret", APP.secret, "--pusher-client-events"]);
let api; // the official server SDK, pointed at Herald
const clients = [];

before(async () => {
  await srv.start();
  api = sdk(APP.secret);
});
after(async () => {
  for (const c of clients) c.disconnect();
  await srv.close();
});

/** sdk is the official server SDK for the app, signing with secret. */
const sdk = (secret) => kitSdk(srv.addr, { secret });

/** client is a pusher-js client of addr; private channels are authorized by authServer. */
function client({ key = APP.key, addr = srv.addr, authServer = api } = {}) {
  const p = kitClient(addr, { key, authServer });
  clients.push(p);
  return p;
}

test("public channel: connection_established, an SDK trigger and a Herald push arrive", async () => {
  const p = client();
  await connected(p);
  assert.match(p.connection.socket_id, /^\d+\.\d+$/);
  const ch = await subscribe(p, "news");
  const greetings = events(ch, "greeting");
  const updates = events(ch, "update");
  await api.trigger("news", "greeting", { hello: "world" });
  await until(() => greetings.length === 1, "the SDK's event");
  assert.deepEqual(greetings[0], { hello: "world" });
  await srv.push({ to: { rooms: ["news"] }, data: { n: 1 }, event: "update" });
  await until(() => updates.length === 1, "the Herald push");
  assert.deepEqual(updates[0], { n: 1 });
});

test("private channel: authorizeChannel, socket_id exclusion, batch", async () => {
  const a = client();
  const b = client();
  await Promise.all([connected(a), connected(b)]);
  const [ca, cb] = await Promise.all([subscribe(a, "private-orders"), subscribe(b, "private-orders")]);
  const gotA = events(ca, "paid");
  const gotB = events(cb, "paid");
  await api.trigger("private-orders", "paid", { n: 1 }, { socket_id: a.connection.socket_id });
  await api.triggerBatch([{ channel: "private-orders", name: "paid", data: { n: 2 } }]);
  await until(() => gotA.length === 1 && gotB.length === 2, "both events");
  assert.deepEqual(gotA, [{ n: 2 }], "the excluded socket got only the second");
  assert.deepEqual(gotB, [{ n: 1 }, { n: 2 }]);
});

test("client events between two pusher-js clients, never echoed", async () => {
  const a = client();
  const b = client();
  await Promise.all([connected(a), connected(b)]);
  const [ca, cb] = await Promise.all([subscribe(a, "private-chat"), subscribe(b, "private-chat")]);
  const typingA = events(ca, "client-typing");
  const typingB = events(cb, "client-typing");
  const doneA = events(ca, "done");
  assert.ok(ca.trigger("client-typing", { who: "a" }));
  await until(() => typingB.length === 1, "b gets a's client event");
  assert.deepEqual(typingB[0], { who: "a" });
  await api.trigger("private-chat", "done", {});
  await until(() => doneA.length === 1, "a's next event");
  assert.equal(typingA.length, 0, "the sender never gets its own client event");
});

test("a bad channel auth gets subscription_error 401 and joins nothing", async () => {
  const p = client({ authServer: sdk("not-the-secret") });
  await connected(p);
  const ch = p.subscribe("private-secret");
  const err = await new Promise((ok) => ch.bind("pusher:subscription_error", ok));
  assert.equal(err.type, "AuthError");
  assert.equal(err.status, 401);
  assert.equal(ch.subscribed, false);
});

test("channel query through the SDK: occupied and subscription_count", async () => {
  const p = client();
  await connected(p);
  await subscribe(p, "queried");
  const r = await api.get({ path: "/channels/queried", params: { info: "subscription_count" } });
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { occupied: true, subscription_count: 1 });
  const empty = await api.get({ path: "/channels/nobody-here" });
  assert.deepEqual(await empty.json(), { occupied: false });
  const t = await api.trigger("queried", "x", {}, { info: "subscription_count" });
  assert.deepEqual(await t.json(), { channels: { queried: { subscription_count: 1 } } });
});

test("an HTTP API call with a bad signature is refused with 401", async () => {
  await assert.rejects(sdk("not-the-secret").trigger("news", "x", {}), (e) => e.status === 401);
});

test("a wrong key: pusher:error 4001, pusher-js gives up", async () => {
  const p = client({ key: "no-such-key" });
  await until(() => p.connection.state === "disconnected", "pusher-js disconnected");
  assert.ok(p.errors.some((e) => e.error?.data?.code === 4001), JSON.stringify(p.errors));
});

// What pusher-js does with each close code Herald sends on this endpoint,
// decided from the code alone: a stand-in server greets it as Herald does,
// then closes with the code.
const mapping = [
  [4200, "reconnects", "drain"],
  [4100, "reconnects", "slow consumer"],
  [4201, "reconnects", "heartbeat timeout"],
  [1001, "reconnects", "shutdown"],
  [4001, "gives up", "wrong key"],
  [4007, "gives up", "unsupported protocol"],
  [4008, "gives up", "no protocol"],
  [4009, "gives up", "terminated / kicked"],
];
for (const [code, want, why] of mapping) {
  test(`close ${code} (${why}): pusher-js ${want}`, async () => {
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await new Promise((ok) => wss.once("listening", ok));
    let conns = 0;
    wss.on("connection", (ws) => {
      conns++;
      ws.send(JSON.stringify({ event: "pusher:connection_established", data: JSON.stringify({ socket_id: `1.${conns}`, activity_timeout: 1 }) }));
      if (conns === 1) setImmediate(() => ws.close(code, why));
    });
    const p = client({ addr: `127.0.0.1:${wss.address().port}` });
    try {
      if (want === "reconnects") {
        await until(() => conns === 2 && p.connection.state === "connected", "pusher-js back");
      } else {
        await until(() => p.connection.state === "disconnected", "pusher-js disconnected");
        assert.equal(conns, 1);
      }
    } finally {
      p.disconnect();
      for (const ws of wss.clients) ws.terminate(); // not ws's 30 s wait for a close handshake
      await new Promise((ok) => wss.close(ok));
    }
  });
}

test("Herald's own closes: drain sends 4200 and pusher-js reconnects", async () => {
  const node = new Server(["--dev", "--pusher-app-id", APP.appId, "--pusher-key", APP.key, "--pusher-secret", APP.secret, "--drain-time", "0s"]);
  await node.start();
  try {
    const p = client({ addr: node.addr });
    await connected(p);
    const r = await fetch(node.http + "/v1/admin/drain", { method: "POST" });
    assert.equal(r.status, 202, await r.text());
    await until(() => p.errors.some((e) => e.error?.data?.code === 4200), "a 4200 close");
    await until(() => p.connection.state !== "connected", "pusher-js leaves connected");
    assert.notEqual(p.connection.state, "disconnected", "pusher-js keeps trying");
    p.disconnect();
  } finally {
    await node.close();
  }
});
