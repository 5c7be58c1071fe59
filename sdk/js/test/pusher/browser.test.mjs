// pusher-js's browser build and Laravel Echo's Pusher connector, unchanged,
// in headless Chromium against a spawned `herald serve`: public and private
// channels (authorized by an endpoint this test serves with the official
// `pusher` SDK's authorizeChannel), events from the SDK's trigger and from
// Herald's own POST /v1/push with "event", client events (Echo's whisper).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import PusherServer from "pusher";
import { Server } from "../server.mjs";
import { browser, shotOnFailure } from "../browser/page.mjs";

const APP = { appId: "1001", key: "shop-pusher-key", secret: "shop-pusher-secret" };
const srv = new Server(["--dev", "--pusher-app-id", APP.appId, "--pusher-key", APP.key, "--pusher-secret", APP.secret, "--pusher-client-events"]);
const modules = new URL("../../node_modules/", import.meta.url);
const scripts = {
  "/pusher.js": readFileSync(new URL("pusher-js/dist/web/pusher.js", modules)),
  "/echo.js": readFileSync(new URL("laravel-echo/dist/echo.iife.js", modules)),
};
let api, web, chrome;

// Both pages take the server's address from ?server= and record into window.got.
const options = `
  const q = new URLSearchParams(location.search);
  const [wsHost, wsPort] = [q.get("server").replace(/:\\d+$/, ""), Number(q.get("server").replace(/^.*:/, ""))];
  window.got = { events: [], subscribed: [], states: [] };
  const opts = { cluster: "herald", wsHost, wsPort, forceTLS: false, enabledTransports: ["ws"], disableStats: true };`;

const pusherPage = `<!doctype html><meta charset="utf-8"><title>pusher-js</title>
<script src="/pusher.js"></script>
<script>${options}
  const p = (window.p = new Pusher("${APP.key}", { ...opts, channelAuthorization: { endpoint: "/pusher/auth", transport: "ajax" } }));
  p.connection.bind("state_change", (s) => got.states.push(s.current));
  for (const name of q.get("channels").split(",")) {
    const ch = p.subscribe(name);
    ch.bind("pusher:subscription_succeeded", () => got.subscribed.push(name));
    ch.bind_global((event, data) => event.startsWith("pusher") || got.events.push({ channel: name, event, data }));
  }
</script>`;

const echoPage = `<!doctype html><meta charset="utf-8"><title>laravel-echo</title>
<script src="/pusher.js"></script>
<script src="/echo.js"></script>
<script>${options}
  const echo = (window.echo = new Echo.default({ broadcaster: "pusher", key: "${APP.key}", ...opts, authEndpoint: "/broadcasting/auth" }));
  const rec = (channel, event) => (data) => got.events.push({ channel, event, data });
  echo.channel("news").subscribed(() => got.subscribed.push("news"))
    .listen(".greeting", rec("news", "greeting")).listen(".update", rec("news", "update"));
  echo.private("orders").subscribed(() => got.subscribed.push("private-orders"))
    .listen(".paid", rec("private-orders", "paid")).listenForWhisper("typing", rec("private-orders", "whisper"));
</script>`;

/** auth answers a channel authorization request as a Pusher app's backend does. */
function auth(req, res) {
  let body = "";
  req.setEncoding("utf8");
  req.on("data", (s) => (body += s));
  req.on("end", () => {
    const f = new URLSearchParams(body);
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(api.authorizeChannel(f.get("socket_id"), f.get("channel_name"))));
  });
}

before(async () => {
  await srv.start();
  const i = srv.addr.lastIndexOf(":");
  api = new PusherServer({ ...APP, host: srv.addr.slice(0, i), port: srv.addr.slice(i + 1), useTLS: false });
  const html = { "/pusher": pusherPage, "/echo": echoPage };
  web = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (req.method === "POST" && (path === "/pusher/auth" || path === "/broadcasting/auth")) return auth(req, res);
    if (scripts[path]) return res.writeHead(200, { "content-type": "text/javascript" }).end(scripts[path]);
    if (html[path]) return res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(html[path]);
    res.writeHead(404).end();
  });
  await new Promise((ok) => web.listen(0, "127.0.0.1", ok));
  chrome = await browser();
});
after(async () => {
  await chrome?.close();
  await new Promise((ok) => (web ? web.close(ok) : ok()));
  await srv.close();
});

const origin = () => `http://127.0.0.1:${web.address().port}`;
const events = (page) => page.evaluate(() => got.events);
const has = (page, want) => page.waitForFunction((w) => got.events.some((e) => JSON.stringify(e) === JSON.stringify(w)), want);

test("pusher-js in Chromium: public and private channels, SDK and Herald events, client events", async () => {
  const [a, b] = [await chrome.newPage(), await chrome.newPage()];
  await shotOnFailure(a, "pusher-js-browser", async () => {
    for (const page of [a, b]) {
      await page.goto(`${origin()}/pusher?server=${srv.addr}&channels=news,private-room`);
      await page.waitForFunction(() => got.subscribed.length === 2);
    }
    await api.trigger("news", "greeting", { hello: "world" });
    await srv.push({ to: { rooms: ["news"] }, data: { n: 1 }, event: "update" });
    await srv.push({ to: { rooms: ["private-room"] }, data: "plain" });
    await api.trigger("private-room", "secret", { s: 1 });
    for (const page of [a, b]) {
      await has(page, { channel: "news", event: "greeting", data: { hello: "world" } });
      await has(page, { channel: "news", event: "update", data: { n: 1 } });
      await has(page, { channel: "private-room", event: "message", data: "plain" });
      await has(page, { channel: "private-room", event: "secret", data: { s: 1 } });
    }
    assert.equal(await a.evaluate(() => p.channel("private-room").trigger("client-ping", { from: "a" })), true);
    await has(b, { channel: "private-room", event: "client-ping", data: { from: "a" } });
    await api.trigger("private-room", "fence", {});
    await has(a, { channel: "private-room", event: "fence", data: {} });
    assert.ok(!(await events(a)).some((e) => e.event === "client-ping"), "the sender got its own client event");
    assert.deepEqual(await a.evaluate(() => got.states.filter((s) => s !== "connecting")), ["connected"]);
  });
  await Promise.all([a.close(), b.close()]);
});

test("Laravel Echo (Pusher connector) in Chromium: channel(), private(), listen and whisper", async () => {
  const [a, b] = [await chrome.newPage(), await chrome.newPage()];
  await shotOnFailure(a, "laravel-echo-browser", async () => {
    for (const page of [a, b]) {
      await page.goto(`${origin()}/echo?server=${srv.addr}`);
      await page.waitForFunction(() => got.subscribed.length === 2);
    }
    await api.trigger("news", "greeting", { hello: "echo" });
    await srv.push({ to: { rooms: ["news"] }, data: { n: 2 }, event: "update" });
    await api.trigger("private-orders", "paid", { order: 7 });
    for (const page of [a, b]) {
      await has(page, { channel: "news", event: "greeting", data: { hello: "echo" } });
      await has(page, { channel: "news", event: "update", data: { n: 2 } });
      await has(page, { channel: "private-orders", event: "paid", data: { order: 7 } });
    }
    await a.evaluate(() => echo.private("orders").whisper("typing", { who: "a" }));
    await has(b, { channel: "private-orders", event: "whisper", data: { who: "a" } });
    await api.trigger("private-orders", "paid", { order: 8 });
    await has(a, { channel: "private-orders", event: "paid", data: { order: 8 } });
    assert.ok(!(await events(a)).some((e) => e.event === "whisper"), "the whisperer heard itself");
  });
  await Promise.all([a.close(), b.close()]);
});
