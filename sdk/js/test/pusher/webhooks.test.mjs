// Pusher-format webhooks from a spawned `herald serve`, received by a real
// HTTP server and checked with the official `pusher` SDK's webhook()
// verification (isValid, getEvents), as a Pusher app's backend does.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { writeFileSync } from "node:fs";
import Pusher from "pusher-js";
import PusherServer from "pusher";
import WebSocket from "ws";
import { Server, until } from "../server.mjs";

const APP = { appId: "1001", key: "shop-pusher-key", secret: "shop-pusher-secret" };

/** receiver is the app's webhook endpoint: fail(n) says whether to answer the n-th request 500. */
const receiver = { requests: 0, events: [], invalid: 0, fail: () => false };
const hooks = createServer((req, res) => {
  let raw = "";
  req.setEncoding("utf8");
  req.on("data", (s) => (raw += s));
  req.on("end", () => {
    const n = receiver.requests++;
    const wh = verifier.webhook({ headers: req.headers, rawBody: raw });
    if (!wh.isValid()) {
      receiver.invalid++;
      res.writeHead(401).end();
      return;
    }
    if (receiver.fail(n)) {
      res.writeHead(500).end();
      return;
    }
    receiver.events.push(...wh.getEvents());
    res.writeHead(200).end();
  });
});
const verifier = new PusherServer({ ...APP, host: "127.0.0.1", useTLS: false });
let srv;
let api;
const clients = [];

before(async () => {
  await new Promise((ok) => hooks.listen(0, "127.0.0.1", ok));
  const url = `http://127.0.0.1:${hooks.address().port}/pusher-hooks`;
  srv = new Server(["--dev", "--pusher-app-id", APP.appId, "--pusher-key", APP.key, "--pusher-secret", APP.secret,
    "--pusher-client-events", "--pusher-webhook-url", url, "--pusher-client-event-webhooks"]);
  // Departures are held back limits.offline_delay (the default, 5 s); presence-* rooms track members.
  writeFileSync(srv.config, 'presence_rooms: ["presence-*"]\n');
  await srv.start();
  const i = srv.addr.lastIndexOf(":");
  api = new PusherServer({ ...APP, host: srv.addr.slice(0, i), port: srv.addr.slice(i + 1), useTLS: false });
});
after(async () => {
  for (const c of clients) (c instanceof WebSocket ? c.close() : c.disconnect());
  await srv.close();
  await new Promise((ok) => hooks.close(ok));
});

/** client is a pusher-js client; member is its channel_data on presence channels. */
function client(member) {
  const i = srv.addr.lastIndexOf(":");
  const p = new Pusher(APP.key, {
    cluster: "herald", wsHost: srv.addr.slice(0, i), wsPort: Number(srv.addr.slice(i + 1)), forceTLS: false,
    enabledTransports: ["ws"], disableStats: true,
    channelAuthorization: { customHandler: ({ socketId, channelName }, cb) => cb(null, api.authorizeChannel(socketId, channelName, member)) },
  });
  clients.push(p);
  return p;
}

function subscribe(p, name) {
  const ch = p.subscribe(name);
  return new Promise((ok, fail) => {
    ch.bind("pusher:subscription_succeeded", () => ok(ch));
    ch.bind("pusher:subscription_error", (e) => fail(new Error("subscription_error " + JSON.stringify(e))));
  });
}

/** native is a Herald (v1) connection of user in --dev mode, joined to room. */
async function native(user, room) {
  const ws = new WebSocket(`${srv.ws}/v1/ws?app=demo&user=${user}`);
  clients.push(ws);
  const joined = new Promise((ok) => ws.on("message", (m) => JSON.parse(m).type === "joined" && ok()));
  await new Promise((ok) => ws.once("open", ok));
  ws.send(JSON.stringify({ type: "join", room }));
  await joined;
  return ws;
}

const of = (name, channel) => receiver.events.filter((e) => e.name === name && e.channel === channel);

test("channel_occupied, then channel_vacated after the delay; a quick return sends neither again", async () => {
  const p = client();
  await subscribe(p, "news");
  await until(() => of("channel_occupied", "news").length === 1, "channel_occupied");
  p.unsubscribe("news");
  await subscribe(p, "news"); // back within the delay: nothing happened
  p.unsubscribe("news");
  await until(() => of("channel_vacated", "news").length === 1, "channel_vacated", 30000);
  assert.equal(of("channel_occupied", "news").length, 1, "no second channel_occupied");
  assert.equal(receiver.invalid, 0, "every request verified by the SDK");
});

test("client_event: event, data as a string, the sender's socket_id", async () => {
  const a = client();
  const b = client();
  const [ca] = await Promise.all([subscribe(a, "private-chat"), subscribe(b, "private-chat")]);
  assert.ok(ca.trigger("client-typing", { who: "a" }));
  const ev = await until(() => of("client_event", "private-chat")[0], "client_event");
  assert.deepEqual(ev, { name: "client_event", channel: "private-chat", event: "client-typing", data: '{"who":"a"}', socket_id: a.connection.socket_id });
});

test("member_added once per user, member_removed once it left for good (Herald presence rooms)", async () => {
  const a1 = await native("alice", "presence-lobby");
  const a2 = await native("alice", "presence-lobby");
  await until(() => of("member_added", "presence-lobby").length === 1, "member_added");
  a1.close();
  a2.close();
  const back = await native("alice", "presence-lobby"); // returns within the delay
  const bob = await native("bob", "presence-lobby");
  await until(() => of("member_added", "presence-lobby").length === 2, "bob's member_added");
  bob.close();
  await until(() => of("member_removed", "presence-lobby").length === 1, "bob's member_removed", 30000);
  back.close();
  await until(() => of("member_removed", "presence-lobby").length === 2, "alice's member_removed", 30000);
  assert.deepEqual(of("member_added", "presence-lobby").map((e) => e.user_id), ["alice", "bob"]);
  assert.deepEqual(of("member_removed", "presence-lobby").map((e) => e.user_id), ["bob", "alice"]);
});

test("pusher-js presence channels: one member_added per user, client_event with user_id, member_removed when its last connection left", async () => {
  const carol = { user_id: "carol", user_info: { name: "Carol" } };
  const [c1, c2, dave] = [client(carol), client(carol), client({ user_id: "dave" })];
  const [ch1] = await Promise.all([subscribe(c1, "presence-room"), subscribe(c2, "presence-room"), subscribe(dave, "presence-room")]);
  await until(() => of("member_added", "presence-room").length === 2, "carol's and dave's member_added");
  assert.ok(ch1.trigger("client-wave", { hi: 1 }));
  const ev = await until(() => of("client_event", "presence-room")[0], "client_event");
  assert.equal(ev.user_id, "carol");
  assert.equal(ev.socket_id, c1.connection.socket_id);
  c1.disconnect();
  c2.disconnect();
  await until(() => of("member_removed", "presence-room").length === 1, "carol's member_removed", 30000);
  assert.deepEqual(of("member_added", "presence-room").map((e) => e.user_id).sort(), ["carol", "dave"]);
  assert.deepEqual(of("member_removed", "presence-room").map((e) => e.user_id), ["carol"]);
});

test("a receiver failing, then recovering, gets the events (retried)", async () => {
  const failedFrom = receiver.requests;
  receiver.fail = (n) => n < failedFrom + 2;
  const p = client();
  await subscribe(p, "retried");
  await until(() => of("channel_occupied", "retried").length === 1, "channel_occupied after the failures", 30000);
  assert.ok(receiver.requests >= failedFrom + 3, `${receiver.requests - failedFrom} requests for one event`);
  assert.equal(of("channel_occupied", "retried").length, 1);
  receiver.fail = () => false;
});
