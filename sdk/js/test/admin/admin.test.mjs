// The admin UI (/admin/) in real headless Chromium against a real
// `herald serve` with two apps and an admin key, driven only through the
// data-testid hooks of issue #16; real WebSocket clients (ws) connect,
// receive, ack and get kicked. Screenshots of every page at 1280x800 go
// to docs/admin/.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { createServer, request } from "node:http";
import WebSocket from "ws";
import { Server, repo, token, until } from "../server.mjs";
import { browser, shotOnFailure } from "../browser/page.mjs";

const ADMIN = "admin-key-0123456789abcdef";
const KEY_A = "app-a-key-0123456789abcdef";
const KEY_B = "app-b-key-0123456789abcdef";
const SECRET = { a: "secret-a-0123456789abcdef0123456789", b: "secret-b-0123456789abcdef0123456789" };
const shots = repo + "/docs/admin/";

const srv = new Server([]);
let chrome;
// receiver takes app b's webhooks: it refuses them (500) until up is set.
const receiver = { up: false, got: [] };
const hooks = createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    if (receiver.up) receiver.got.push(req.headers["webhook-id"]);
    res.writeHead(receiver.up ? 204 : 500).end();
  });
});
before(async () => {
  await new Promise((ok) => hooks.listen(0, "127.0.0.1", ok));
  writeFileSync(srv.config, `admin_keys: ["${ADMIN}"]
presence_rooms: ["chat-*"]
allow_private_webhooks: true
limits:
  webhook_retry_for: 500ms
apps:
  - name: "a"
    api_keys: ["${KEY_A}"]
    token_secret: "${SECRET.a}"
  - name: "b"
    api_keys: ["${KEY_B}"]
    token_secret: "${SECRET.b}"
    webhooks:
      - url: "http://127.0.0.1:${hooks.address().port}/hook"
        secret: "whsec_${Buffer.from("webhook-secret-0123456789abcdef").toString("base64")}"
        events: ["user.online"]
`);
  [chrome] = await Promise.all([browser(), srv.start()]);
});
after(async () => {
  await chrome?.close();
  await srv.close();
  hooks.close();
});

/** client is a real WebSocket client of app's user; it records frames and its close code. */
async function client(app, user, device = "web") {
  const ws = new WebSocket(`${srv.ws}/v1/ws?token=${token(SECRET[app], { sub: user, app, device })}`);
  const c = { ws, frames: [], closed: null, welcome: null };
  ws.on("message", (b) => {
    const f = JSON.parse(b.toString());
    c.frames.push(f);
    if (f.type === "welcome") c.welcome = f;
  });
  ws.on("close", (code) => (c.closed = code));
  await until(() => c.welcome, "welcome of " + user);
  c.pushes = () => c.frames.filter((f) => f.type === "push").flatMap((f) => f.msgs);
  c.close = () => new Promise((ok) => (ws.readyState === WebSocket.CLOSED ? ok() : (ws.once("close", ok), ws.close())));
  return c;
}

/** api calls the server API with the admin key. */
async function api(method, path, body) {
  const r = await fetch(srv.http + path, { method, body: body && JSON.stringify(body), headers: { Authorization: "Bearer " + ADMIN } });
  return { status: r.status, body: r.status === 204 ? null : await r.json() };
}

/** session opens a 1280x800 page that logs every request, logged in with key. */
async function session(key) {
  const ctx = await chrome.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  page.requests = [];
  page.on("request", (r) => page.requests.push({ method: r.method(), url: r.url() }));
  page.on("dialog", (d) => d.accept());
  await page.goto(srv.http + "/admin/");
  await page.fill('[data-testid="login-key"]', key);
  await page.click('[data-testid="login-submit"]');
  await page.waitForSelector('[data-testid="stat-conns"]');
  return page;
}

const value = (page, id) => page.$eval(`[data-testid="${id}"]`, (e) => Number(e.dataset.value ?? e.textContent));
const shot = (page, name) => page.screenshot({ path: shots + name + ".png" });

async function nav(page, name) {
  await page.click(`[data-testid="nav-${name}"]`);
  await page.waitForSelector(`[data-testid="page-${name}"]`);
}

test("login refuses a wrong key, accepts the admin key, never shows it, and logs out", async () => {
  const ctx = await chrome.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  await shotOnFailure(page, "admin-login", async () => {
    await page.goto(srv.http + "/admin/");
    await page.fill('[data-testid="login-key"]', "wrong-key-0123456789abcdef");
    await page.click('[data-testid="login-submit"]');
    await page.waitForFunction(() => document.querySelector('[data-testid="login-error"]').textContent.includes("refused"));
    assert.equal((await ctx.cookies()).length, 0);
    await page.fill('[data-testid="login-key"]', ADMIN);
    await shot(page, "login");
    await page.click('[data-testid="login-submit"]');
    await page.waitForSelector('[data-testid="stat-conns"]');
    const [ck] = await ctx.cookies();
    assert.equal(ck.httpOnly, true);
    assert.equal(ck.sameSite, "Strict");
    assert.ok(!(await page.content()).includes(ADMIN), "the key is on the page after login");
    assert.deepEqual(await page.$$eval('[data-testid="app-select"] option', (o) => o.map((e) => e.value)), ["a", "b"]);
    // A forged cookie: the login page, no data.
    await ctx.clearCookies();
    await ctx.addCookies([{ ...ck, value: "forged" }]);
    await page.reload();
    await page.waitForSelector('[data-testid="login-key"]');
    assert.equal(await page.$('[data-testid="stat-conns"]'), null);
    await ctx.clearCookies();
    await ctx.addCookies([ck]);
    await page.reload();
    await page.click('[data-testid="logout"]');
    await page.waitForSelector('[data-testid="login-key"]');
    await page.reload();
    await page.waitForSelector('[data-testid="login-key"]');
  });
  await ctx.close();
});

test("overview follows real clients; a user's connections are listed and one is kicked (4002)", async () => {
  const page = await session(ADMIN);
  await shotOnFailure(page, "admin-users", async () => {
    assert.equal(await value(page, "stat-conns"), 0);
    const c1 = await client("a", "alice", "phone");
    const c2 = await client("a", "alice", "laptop");
    const other = await client("b", "alice", "b-app"); // app b: never counted or listed under a
    await page.waitForFunction(() => document.querySelector('[data-testid="stat-conns"]')?.dataset.value === "2");
    assert.equal(await value(page, "stat-users"), 1);
    assert.ok((await page.$$('[data-testid="node-row"]')).length >= 1);
    await shot(page, "overview");
    await c2.close();
    await page.waitForFunction(() => document.querySelector('[data-testid="stat-conns"]')?.dataset.value === "1");
    const c3 = await client("a", "alice", "tablet");
    assert.equal((await api("POST", "/v1/rooms/chat-1/join", { app: "a", users: ["alice"] })).status, 204);

    await nav(page, "users");
    await page.fill('[data-testid="user-search"]', "alice");
    await page.press('[data-testid="user-search"]', "Enter");
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="user-conn-row"]').length === 2);
    // Her presence room and her inbox (no stored message yet).
    await page.waitForSelector('[data-testid="user-presence-room"][data-room="chat-1"]');
    assert.match(await page.textContent('[data-testid="user-presence"]'), /chat-1 \(present\)/);
    assert.equal(await page.getAttribute('[data-testid="user-inbox"]', "data-latest"), "0");
    const ids = await page.$$eval('[data-testid="user-conn-row"]', (r) => r.map((e) => e.dataset.conn).sort());
    assert.deepEqual(ids, [c1.welcome.conn, c3.welcome.conn].sort());
    await shot(page, "users");
    const row = page.locator(`[data-testid="user-conn-row"][data-conn="${c1.welcome.conn}"]`);
    await row.locator('[data-testid="kick-conn"]').click();
    await until(() => c1.closed, "the kicked client's close");
    assert.equal(c1.closed, 4002);
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="user-conn-row"]').length === 1);
    assert.equal(c3.closed, null);
    assert.equal(other.closed, null);
    await Promise.all([c3.close(), other.close()]);
  });
  await page.context().close();
});

test("a console push reaches the client, its status shows delivered then acked, recall reaches it; bad JSON makes no request", async () => {
  const page = await session(ADMIN);
  await shotOnFailure(page, "admin-push", async () => {
    const bob = await client("a", "bob");
    await nav(page, "push");
    const pushes = () => page.requests.filter((r) => r.method === "POST" && r.url.endsWith("/v1/push")).length;
    await page.fill('[data-testid="push-targets"]', '{"users":["bob"]}');
    await page.fill('[data-testid="push-data"]', "{not json");
    await page.click('[data-testid="push-submit"]');
    await page.waitForSelector('[data-testid="push-error"]');
    assert.equal(pushes(), 0, "invalid JSON made a request");
    await page.fill('[data-testid="push-data"]', '{"hello":"bob"}');
    await page.check('[data-testid="push-offline"]');
    await page.click('[data-testid="push-submit"]');
    const id = await (await page.waitForSelector('[data-testid="push-result"]')).getAttribute("data-id");
    assert.equal(pushes(), 1);
    await shot(page, "push");
    const got = await until(() => bob.pushes().find((m) => m.id === id), "the push at the client");
    assert.deepEqual(got.data, { hello: "bob" });
    assert.ok(got.seq > 0);

    await page.click('[data-testid="push-status-link"]');
    const st = '[data-testid="message-status"]';
    await page.waitForFunction((s) => document.querySelector(s)?.dataset.delivered === "1", st);
    assert.equal(await page.$eval(st, (e) => e.dataset.targeted), "1");
    assert.equal(await page.$eval(st, (e) => e.dataset.acked), "0");
    bob.ws.send(JSON.stringify({ type: "ack", seq: got.seq }));
    await page.waitForFunction((s) => document.querySelector(s)?.dataset.acked === "1", st, { timeout: 20000 });
    await shot(page, "messages");
    await page.click('[data-testid="recall-message"]');
    await until(() => bob.frames.find((f) => f.type === "recall" && f.id === id), "the recall at the client");
    // Bob's inbox on the Users page: his ack is its acked position.
    await nav(page, "users");
    await page.fill('[data-testid="user-search"]', "bob");
    await page.press('[data-testid="user-search"]', "Enter");
    await page.waitForSelector(`[data-testid="user-inbox"][data-acked="${got.seq}"][data-latest="${got.seq}"][data-waiting="0"]`);
    await bob.close();
  });
  await page.context().close();
});

test("the overview draws 15 minutes of server-side history on first load, and it follows real clients", async () => {
  const page = await session(ADMIN);
  await shotOnFailure(page, "admin-graphs", async () => {
    const g = '[data-testid="graph-conns"]';
    await page.waitForSelector(g);
    // The first render draws what the server kept: no waiting for polls.
    assert.ok(Number(await page.getAttribute(g, "data-points")) >= 1, "no point on first load");
    assert.equal(page.requests.filter((r) => new URL(r.url).pathname === "/v1/stats/history").length, 1);
    assert.equal((await page.$$('[data-testid="graphs"] svg')).length, 7);
    assert.ok((await page.$$(g + " polyline, " + g + " circle")).length >= 1, "nothing drawn");
    const frank = await client("a", "frank");
    // The next 5-second slot counts him; the page fetches it by itself.
    await page.waitForFunction((sel) => document.querySelector(sel)?.dataset.last === "1", g, { timeout: 20000 });
    await frank.close();
  });
  await page.context().close();
});

test("the messages page lists an app's recent pushes newest first, with the funnel of stored ones", async () => {
  const erin = await client("a", "erin");
  const page = await session(ADMIN);
  await shotOnFailure(page, "admin-recent", async () => {
    const push = async (body) => {
      const r = await api("POST", "/v1/push", { app: "a", ...body });
      assert.equal(r.status, 200);
      return r.body.id;
    };
    const first = await push({ to: { users: ["erin"] }, data: { n: 1 }, offline: true });
    const second = await push({ to: { rooms: ["news"] }, data: { n: 2 } });
    const third = await push({ to: { users: ["erin"] }, data: { n: 3 }, offline: true });
    assert.equal((await api("POST", "/v1/push", { app: "b", to: { users: ["erin"] }, data: 0 })).status, 200); // app b: not listed
    await until(() => erin.pushes().length === 2, "erin's two pushes");
    await nav(page, "messages");
    const rows = () => page.$$eval('[data-testid="recent-row"]', (r) => r.map((e) => e.dataset.id));
    await page.waitForSelector(`[data-testid="recent-row"][data-id="${third}"]`);
    const ids = (await rows()).filter((id) => [first, second, third].includes(id));
    assert.deepEqual(ids, [third, second, first]);
    assert.equal((await rows())[0], third, "the newest is not first");
    const funnel = (id) => `[data-testid="recent-row"][data-id="${id}"] [data-testid="recent-funnel"]`;
    // Delivered to erin's live connection; the list refreshes by itself.
    await page.waitForSelector(funnel(third) + '[data-targeted="1"][data-delivered="1"][data-acked="0"]', { timeout: 20000 });
    assert.equal(await page.$(`[data-testid="recent-row"][data-id="${second}"] [data-testid="recent-funnel"]`), null, "a live push has no status");
    erin.ws.send(JSON.stringify({ type: "ack", seq: erin.pushes().find((m) => m.id === third).seq }));
    await page.waitForSelector(funnel(third) + '[data-acked="1"]', { timeout: 20000 });
    await shot(page, "messages-recent");
    await page.click(`[data-testid="recent-row"][data-id="${third}"] [data-testid="recent-link"]`);
    await page.waitForSelector('[data-testid="message-status"][data-acked="1"]');
    assert.equal(new URL(page.url()).hash, "#/messages/" + third);
  });
  await page.context().close();
  await erin.close();
});

test("the live tail shows pushes to a room; rooms list members", async () => {
  const page = await session(ADMIN);
  await shotOnFailure(page, "admin-tail", async () => {
    const carol = await client("a", "carol");
    assert.equal((await api("POST", "/v1/rooms/news/join", { app: "a", users: ["carol"] })).status, 204);
    await nav(page, "rooms");
    await page.fill('[data-testid="room-search"]', "news");
    await page.press('[data-testid="room-search"]', "Enter");
    await page.waitForSelector('[data-testid="room-member-row"]');
    await shot(page, "rooms");

    await nav(page, "tail");
    await page.fill('[data-testid="tail-target"]', "room:news");
    await page.click('[data-testid="tail-start"]');
    await page.waitForFunction(() => document.querySelector('[data-testid="tail-status"]').textContent.startsWith("Watching"));
    for (let i = 1; i <= 3; i++) assert.equal((await api("POST", "/v1/push", { app: "a", to: { rooms: ["news"] }, data: { n: i } })).status, 200);
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="tail-row"]').length === 3);
    assert.ok((await page.textContent('[data-testid="tail-row"]')).includes('"n":3'));
    await shot(page, "tail");

    await nav(page, "webhooks");
    // App a has no webhook endpoint, and so no dead letter.
    await page.waitForSelector('[data-testid="webhooks-none"]');
    await page.waitForSelector('[data-testid="webhooks-empty"]');
    await carol.close();
  });
  await page.context().close();
});

test("the webhooks page shows an endpoint's counts and dead letters, and replays them", async () => {
  const page = await session(ADMIN);
  await shotOnFailure(page, "admin-webhooks", async () => {
    await page.selectOption('[data-testid="app-select"]', "b");
    const hank = await client("b", "hank"); // user.online: refused until the receiver is up
    await nav(page, "webhooks");
    const ep = '[data-testid="webhook-endpoint-row"]';
    // The page refreshes itself (every 5 s) until the event is dead.
    await page.waitForSelector('[data-testid="webhook-dead-row"]', { timeout: 20000 });
    await page.waitForFunction((sel) => Number(document.querySelector(sel)?.dataset.dead) >= 1, ep, { timeout: 20000 });
    assert.ok(Number(await page.getAttribute(ep, "data-retried")) >= 1);
    const deadIDs = await page.$$eval('[data-testid="webhook-dead-row"]', (r) => r.map((e) => e.dataset.id));
    await shot(page, "webhooks");
    receiver.up = true;
    await page.click('[data-testid="webhook-replay-all"]');
    await page.waitForSelector('[data-testid="webhooks-empty"]');
    await until(() => deadIDs.every((id) => receiver.got.includes(id)), "the replayed events at the receiver");
    await page.waitForFunction(([sel, n]) => Number(document.querySelector(sel)?.dataset.delivered) >= n, [ep, deadIDs.length], { timeout: 20000 });
    await hank.close();
  });
  await page.context().close();
});

test("an app-key session sees its app only and makes no request it may not make", async () => {
  const dave = await client("b", "dave");
  const page = await session(KEY_A);
  await shotOnFailure(page, "admin-appkey", async () => {
    assert.deepEqual(await page.$$eval('[data-testid="app-select"] option', (o) => o.map((e) => e.value)), ["a"]);
    assert.equal(await value(page, "stat-conns"), 0); // dave (app b) is not counted
    await nav(page, "users");
    await page.fill('[data-testid="user-search"]', "dave");
    await page.press('[data-testid="user-search"]', "Enter");
    await page.waitForSelector('[data-testid="user-online"][data-online="false"]');
    for (const p of ["rooms", "messages", "push", "tail", "webhooks", "overview"]) await nav(page, p);
    assert.equal(await page.$('[data-testid="push-submit"]'), null);
    await page.waitForSelector('[data-testid="stat-conns"]');
    for (const r of page.requests) {
      const u = new URL(r.url);
      assert.equal(u.origin, srv.http, "request to another origin: " + r.url);
      assert.ok(!u.searchParams.has("app"), "an app-key session named an app: " + r.url);
      assert.ok(!u.pathname.startsWith("/v1/admin/"), "an app-key session called an admin endpoint: " + r.url);
      if (r.method !== "GET") assert.equal(u.pathname, "/admin/login", `${r.method} ${r.url} from a read-only session`);
    }
    assert.equal(dave.closed, null);
  });
  await page.context().close();
  await dave.close();
});

test("every asset the UI loads weighs at most 200 KiB gzipped, as served", async () => {
  const page = await session(ADMIN);
  for (const p of ["users", "rooms", "messages", "push", "tail", "webhooks"]) await nav(page, p);
  const assets = [...new Set(page.requests.map((r) => new URL(r.url)).filter((u) => u.pathname.startsWith("/admin/") && !["/admin/session", "/admin/login"].includes(u.pathname)).map((u) => u.pathname))];
  assert.ok(assets.includes("/admin/app.js") && assets.includes("/admin/app.css"), "assets: " + assets);
  let total = 0;
  for (const path of assets) {
    total += await new Promise((ok, fail) =>
      request(srv.http + path, { headers: { "accept-encoding": "gzip" } }, (res) => {
        let n = 0;
        assert.equal(res.headers["content-encoding"], "gzip", path);
        res.on("data", (b) => (n += b.length)).on("end", () => ok(n));
      }).on("error", fail).end());
  }
  assert.ok(total > 0 && total <= 200 * 1024, `assets weigh ${total} bytes gzipped`);
  await page.context().close();
});
