// Pusher presence, encrypted and user channels, user sign-in and the HTTP
// API around them, with the real pusher-js (Node) and the official `pusher`
// server SDK against a spawned `herald serve` — cases after soketi's suite
// (presence joins and leaves, one user on several connections, client
// events with user_id, encrypted channels, signin, terminate, the channel
// queries with and without info), written anew for Herald.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { APP, MASTER_KEY, client, codes, connected, events, frames, pusherNode, sdk, subscribe, until } from "./kit.mjs";

const srv = pusherNode();
let api;
const clients = [];

before(async () => {
  await srv.start();
  api = sdk(srv.addr);
});
after(async () => {
  for (const c of clients) c.disconnect();
  await srv.close();
});

function open(opts) {
  const p = client(srv.addr, opts);
  clients.push(p);
  return p;
}

const john = { user_id: "1", user_info: { name: "John" } };
const alice = { user_id: "2", user_info: { name: "Alice" } };
const bob = { user_id: 3, user_info: { name: "Bob" } }; // a number, as PHP backends send

/** members lists a presence channel's members as pusher-js holds them. */
function members(ch) {
  const out = {};
  ch.members.each((m) => (out[m.id] = m.info));
  return out;
}

test("presence: members with their info, one member_added per user, removed when its last connection leaves", async () => {
  const name = "presence-room1";
  const j1 = open({ member: john });
  await connected(j1);
  const cj1 = await subscribe(j1, name);
  assert.equal(cj1.members.count, 1);
  assert.deepEqual(cj1.members.me, { id: "1", info: { name: "John" } });
  const added = events(cj1, "pusher:member_added");
  const removed = events(cj1, "pusher:member_removed");

  const a = open({ member: alice });
  await connected(a);
  const ca = await subscribe(a, name);
  assert.deepEqual(members(ca), { 1: { name: "John" }, 2: { name: "Alice" } });
  assert.equal(ca.members.count, 2);
  await until(() => added.length === 1, "john's member_added for alice");
  assert.deepEqual(added[0], { id: "2", info: { name: "Alice" } });
  const aliceAdded = events(ca, "pusher:member_added");
  const aliceRemoved = events(ca, "pusher:member_removed");

  // A second connection of john: no member_added anywhere. Bob's arrival
  // afterwards is the barrier (john's second join queues nothing at all).
  const j2 = open({ member: john });
  await connected(j2);
  const cj2 = await subscribe(j2, name);
  assert.equal(cj2.members.count, 2);
  const b = open({ member: bob });
  await connected(b);
  await subscribe(b, name);
  await until(() => aliceAdded.length === 1, "alice's member_added for bob");
  assert.deepEqual(aliceAdded, [{ id: "3", info: { name: "Bob" } }], "john's second connection announced nobody");
  assert.equal(frames(j1, "pusher_internal:member_added", name).filter((m) => m.data.user_id === "1").length, 0, "a member is never told of itself");

  // John's first connection leaves: john stays (his second one); then bob
  // leaves: removed. Then john's last: removed.
  j1.disconnect();
  b.disconnect();
  await until(() => aliceRemoved.length === 1, "bob's member_removed");
  assert.deepEqual(aliceRemoved, [{ id: "3", info: { name: "Bob" } }]);
  j2.disconnect();
  await until(() => aliceRemoved.length === 2, "john's member_removed");
  assert.equal(aliceRemoved[1].id, "1");
  assert.equal(ca.members.count, 1);
  assert.equal(removed.length, 0);
});

test("presence: client events carry the member's user_id and are never echoed", async () => {
  const name = "presence-chat";
  const j = open({ member: john });
  const a = open({ member: alice });
  await Promise.all([connected(j), connected(a)]);
  const [cj, ca] = await Promise.all([subscribe(j, name), subscribe(a, name)]);
  const gotJ = events(cj, "client-greeting");
  const gotA = events(ca, "client-greeting");
  assert.ok(ca.trigger("client-greeting", { message: "hello" }));
  await until(() => gotJ.length === 1, "john gets alice's client event");
  assert.deepEqual(gotJ[0], { message: "hello", from: "2" });
  await api.trigger(name, "done", {});
  await until(() => frames(a, "done", name).length === 1, "alice's next event");
  assert.equal(gotA.length, 0);
});

test("presence: a forged or other-socket auth is refused and joins nothing", async () => {
  const name = "presence-guarded";
  const other = open({ member: john });
  await connected(other);
  const forged = open({ authorize: (sid, ch) => ({ ...api.authorizeChannel(other.connection.socket_id, ch, john) }) });
  await connected(forged);
  const ch = forged.subscribe(name);
  const err = await new Promise((ok) => ch.bind("pusher:subscription_error", ok));
  assert.equal(err.type, "AuthError");
  assert.equal(err.status, 401);
  const tampered = open({ authorize: (sid, ch) => ({ ...api.authorizeChannel(sid, ch, john), channel_data: JSON.stringify(alice) }) });
  await connected(tampered);
  const ch2 = tampered.subscribe(name);
  await new Promise((ok) => ch2.bind("pusher:subscription_error", ok));
  const r = await api.get({ path: `/channels/${name}`, params: { info: "user_count,subscription_count" } });
  assert.deepEqual(await r.json(), { occupied: false, user_count: 0, subscription_count: 0 });
});

test("HTTP API: users, user_count, channel lists with and without info, and Pusher's refusals", async () => {
  const name = "presence-api";
  const j1 = open({ member: john });
  const j2 = open({ member: john });
  const a = open({ member: alice });
  const pub = open();
  await Promise.all([j1, j2, a, pub].map(connected));
  await Promise.all([subscribe(j1, name), subscribe(j2, name), subscribe(a, name), subscribe(pub, "public-api")]);
  await until(async () => (await (await api.get({ path: `/channels/${name}/users` })).json()).users.length === 2, "both users listed");
  const users = await (await api.get({ path: `/channels/${name}/users` })).json();
  assert.deepEqual(users, { users: [{ id: "1" }, { id: "2" }] });
  const info = await api.get({ path: `/channels/${name}`, params: { info: "user_count,subscription_count" } });
  assert.deepEqual(await info.json(), { occupied: true, user_count: 2, subscription_count: 3 });

  const all = await (await api.get({ path: "/channels" })).json();
  assert.deepEqual(all.channels[name], {});
  assert.deepEqual(all.channels["public-api"], {});
  const presence = await (await api.get({ path: "/channels", params: { filter_by_prefix: "presence-", info: "user_count" } })).json();
  assert.deepEqual(presence.channels[name], { user_count: 2 });
  assert.equal(presence.channels["public-api"], undefined);

  const t = await api.trigger(name, "x", {}, { info: "user_count,subscription_count" });
  assert.deepEqual(await t.json(), { channels: { [name]: { user_count: 2, subscription_count: 3 } } });

  for (const [path, params] of [
    ["/channels", { info: "user_count" }],
    ["/channels", { filter_by_prefix: "private-", info: "user_count" }],
    ["/channels/public-api", { info: "user_count" }],
    ["/channels/public-api/users", {}],
  ]) {
    const r = await api.get({ path, params }).catch((e) => e);
    assert.equal(r.status, 400, path + " " + JSON.stringify(params));
  }
});

test("HTTP API limits: 100 channels per trigger, 10 events per batch, 200-character names", async () => {
  // The SDK checks some limits itself: its signed post() sends what it is given.
  const events = (body) => api.post({ path: "/events", body });
  const batch = (n) => api.post({ path: "/batch_events", body: { batch: Array.from({ length: n }, (_, i) => ({ channel: "c" + i, name: "x", data: "{}" })) } });
  const channels = Array.from({ length: 101 }, (_, i) => "c" + i);
  await assert.rejects(events({ name: "x", data: "{}", channels }), (e) => e.status === 400);
  await assert.doesNotReject(events({ name: "x", data: "{}", channels: channels.slice(0, 100) }));
  await assert.rejects(batch(11), (e) => e.status === 400);
  await assert.doesNotReject(batch(10));
  await assert.rejects(events({ name: "x", data: "{}", channel: "c".repeat(201) }), (e) => e.status === 400);
  await assert.doesNotReject(events({ name: "x", data: "{}", channel: "c".repeat(200) }));
  await assert.rejects(events({ name: "x", data: "{}", channel: "bad name!" }), (e) => e.status === 400);
  await assert.rejects(events({ name: "x", data: "{}", channel: "#not-a-user-channel" }), (e) => e.status === 400);
  await assert.rejects(events({ name: "e".repeat(201), data: "{}", channel: "c" }), (e) => e.status === 400);
});

test("private-encrypted-: the SDK encrypts with the master key, pusher-js decrypts, client events are refused", async () => {
  const enc = sdk(srv.addr, { encryptionMasterKeyBase64: MASTER_KEY });
  const name = "private-encrypted-vault";
  const a = open({ authServer: enc });
  const b = open({ authServer: enc });
  await Promise.all([connected(a), connected(b)]);
  const [ca] = await Promise.all([subscribe(a, name), subscribe(b, name)]);
  const got = events(ca, "secret");
  await enc.trigger(name, "secret", { pin: 1234 });
  await until(() => got.length === 1, "the decrypted event");
  assert.deepEqual(got[0], { pin: 1234 });
  const raw = frames(a, "secret", name)[0];
  assert.ok(raw.data.ciphertext && raw.data.nonce, "Herald relayed the ciphertext: " + JSON.stringify(raw.data));

  // pusher-js refuses client events on encrypted channels itself; a raw
  // frame gets Pusher's error and the connection stays.
  b.send_event("client-peek", { x: 1 }, name);
  await until(() => codes(b).includes(4009), "pusher:error 4009");
  assert.equal(b.connection.state, "connected");
  await enc.trigger(name, "secret", { pin: 5678 });
  await until(() => got.length === 2, "the next event");
  assert.equal(frames(a, "client-peek").length, 0);
});

test("signin (an id of any characters): signin_success, sendToUser reaches only that user's connections, #server-to-user- is theirs alone", async () => {
  const carl1 = open({ user: { id: "auth0|carl", user_info: { name: "Carl" } } });
  const carl2 = open({ user: { id: "auth0|carl" } });
  const dora = open({ user: { id: "dora" } });
  await Promise.all([carl1, carl2, dora].map(connected));
  const got = [[], [], []];
  [carl1, carl2, dora].forEach((p, i) => {
    p.user.bind("notice", (d) => got[i].push(d));
    p.signin();
  });
  await until(() => [carl1, carl2, dora].every((p) => p.user.user_data), "three sign-ins");
  assert.equal(carl1.user.user_data.id, "auth0|carl");
  await until(() => [carl1, carl2, dora].every((p) => p.user.serverToUserChannel?.subscribed), "user channels subscribed");
  await api.sendToUser("auth0|carl", "notice", { n: 1 });
  await until(() => got[0].length === 1 && got[1].length === 1, "carl's connections get it");
  assert.deepEqual(got[0], [{ n: 1 }]);
  await api.sendToUser("dora", "notice", { n: 2 });
  await until(() => got[2].length === 1, "dora's");
  assert.equal(got[0].length, 1, "carl never got dora's");

  // dora subscribing to carl's channel is refused.
  dora.send_event("pusher:subscribe", { channel: "#server-to-user-auth0|carl", auth: "" });
  await until(() => frames(dora, "pusher:subscription_error", "#server-to-user-auth0|carl").length === 1, "subscription_error");
  await api.sendToUser("auth0|carl", "notice", { n: 3 });
  await until(() => got[0].length === 2, "carl's next");
  assert.equal(got[2].length, 1);
  assert.equal(frames(dora, "notice", "#server-to-user-auth0|carl").length, 0);
});

test("signin with a bad signature: pusher:error 4009, closed, pusher-js gives up", async () => {
  const bad = open({ authServer: sdk(srv.addr, { secret: "not-the-secret" }), user: { id: "eve" } });
  await connected(bad);
  bad.signin();
  await until(() => bad.connection.state === "disconnected", "pusher-js disconnected");
  assert.ok(codes(bad).includes(4009), JSON.stringify(bad.errors));
});

test("terminate_connections closes the user's connections with 4009 (pusher-js stays down), others stay", async () => {
  const f1 = open({ user: { id: "fred" } });
  const f2 = open({ user: { id: "fred" } });
  const g = open({ user: { id: "gina" } });
  await Promise.all([f1, f2, g].map(connected));
  for (const p of [f1, f2, g]) p.signin();
  await until(() => [f1, f2, g].every((p) => p.user.serverToUserChannel?.subscribed), "three sign-ins");
  await api.terminateUserConnections("fred");
  await until(() => f1.connection.state === "disconnected" && f2.connection.state === "disconnected", "fred's connections closed");
  assert.ok(codes(f1).includes(4009) && codes(f2).includes(4009), JSON.stringify(f1.errors));
  assert.equal(g.connection.state, "connected");
  await api.sendToUser("gina", "still", {});
  await until(() => frames(g, "still").length === 1, "gina still served");
});

test("offline pushes stored for a user reach their signed-in Pusher connection in order, once", async () => {
  for (const n of [1, 2, 3]) await srv.push({ to: { users: ["hana"] }, offline: true, data: { n }, event: "note" });
  const h = open({ user: { id: "hana" } });
  await connected(h);
  const got = [];
  h.user.bind("note", (d) => got.push(d.n));
  h.signin();
  await until(() => got.length === 3, "the stored pushes");
  assert.deepEqual(got, [1, 2, 3]);
  h.disconnect();
  // Handed to a Pusher connection counts as read: a second sign-in gets
  // only what was stored since.
  await srv.push({ to: { users: ["hana"] }, offline: true, data: { n: 4 }, event: "note" });
  const h2 = open({ user: { id: "hana" } });
  await connected(h2);
  const again = [];
  h2.user.bind("note", (d) => again.push(d.n));
  h2.signin();
  await until(() => again.length === 1, "the new one");
  await api.sendToUser("hana", "note", { n: 5 });
  await until(() => again.length === 2, "a live one");
  assert.deepEqual(again, [4, 5]);
});

test("bad connects: an unknown key 4001, an unknown protocol 4007, none 4008 — each a pusher:error and the same close", async () => {
  for (const [query, key, code] of [["protocol=7", "no-such-key", 4001], ["protocol=8", APP.key, 4007], ["protocol=4", APP.key, 4007], ["client=js", APP.key, 4008]]) {
    const ws = new WebSocket(`${srv.ws}/app/${key}?${query}`);
    const got = [];
    ws.on("message", (b) => got.push(JSON.parse(b.toString())));
    const closed = await new Promise((ok) => ws.on("close", (c) => ok(c)));
    assert.equal(closed, code, query);
    assert.deepEqual(got.map((f) => [f.event, f.data.code]), [["pusher:error", code]], query);
  }
});

test("refused client events: a public channel or no client- prefix 4009, over the rate 4301; nothing delivered, the connection stays", async () => {
  const a = open();
  const b = open();
  await Promise.all([connected(a), connected(b)]);
  await Promise.all([subscribe(a, "public-chat"), subscribe(b, "public-chat"), subscribe(a, "private-rate"), subscribe(b, "private-rate")]);
  a.send_event("client-x", { n: 1 }, "public-chat");
  await until(() => codes(a).filter((c) => c === 4009).length === 1, "4009 for a public channel");
  a.send_event("not-client", { n: 1 }, "private-rate");
  await until(() => codes(a).filter((c) => c === 4009).length === 2, "4009 without the client- prefix");
  for (let i = 0; i < 60; i++) a.send_event("client-burst", { i }, "private-rate"); // send_rate is 20 a second
  await until(() => codes(a).includes(4301), "4301 over the rate");
  assert.equal(a.connection.state, "connected");
  await api.trigger("private-rate", "after", {});
  await until(() => frames(b, "after").length === 1, "b's next event");
  assert.equal(frames(b, "client-x").length + frames(b, "not-client").length, 0);
  const burst = frames(b, "client-burst").length;
  assert.ok(burst >= 20 && burst < 60, `b got ${burst} of the 60`);
});

test("subscribe: names over 200 characters or outside Pusher's set, and #channels not one's own, are refused", async () => {
  const p = open();
  await connected(p);
  await subscribe(p, "c".repeat(200));
  for (const name of ["c".repeat(201), "bad name", "#other", "#server-to-user-x"]) {
    p.send_event("pusher:subscribe", { channel: name, auth: "" });
    await until(() => frames(p, "pusher:subscription_error", name).length === 1, "subscription_error for " + name.slice(0, 20));
  }
  const r = await api.get({ path: "/channels" });
  assert.deepEqual(Object.keys((await r.json()).channels).filter((c) => c.startsWith("#") || c.includes(" ")), []);
});

test("presence as the signed-in user: no channel_data, the user_data's id and user_info are the member", async () => {
  const name = "presence-signed";
  const watcher = open({ member: john });
  await connected(watcher);
  const cw = await subscribe(watcher, name);
  const added = events(cw, "pusher:member_added");
  const k = open({ user: { id: "kim", user_info: { name: "Kim" } }, authorize: (sid, ch) => api.authorizeChannel(sid, ch) });
  await connected(k);
  k.signin();
  const ck = await subscribe(k, name);
  assert.deepEqual(ck.members.me, { id: "kim", info: { name: "Kim" } });
  assert.deepEqual(members(ck), { 1: { name: "John" }, kim: { name: "Kim" } });
  await until(() => added.length === 1, "kim's member_added");
  assert.deepEqual(added[0], { id: "kim", info: { name: "Kim" } });
  // Not signed in and no channel_data: refused.
  const anon = open({ authorize: (sid, ch) => api.authorizeChannel(sid, ch) });
  await connected(anon);
  anon.send_event("pusher:subscribe", { channel: name, auth: api.authorizeChannel(anon.connection.socket_id, name).auth });
  await until(() => frames(anon, "pusher:subscription_error", name).length === 1, "subscription_error");
});
