// The admin UI on a real 3-node cluster: three `herald serve` processes
// clustering their embedded NATS servers (--cluster-*), an admin key and
// app "a". A user connected to two nodes is listed with both connections
// and one is kicked (the client gets 4002); the overview lists every node
// with its uptime, CPU and memory, and its drain button (confirmed) drains
// another node than the one serving the page (its client gets 4000).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { createServer } from "node:net";
import WebSocket from "ws";
import { Server, repo, token, until } from "../server.mjs";
import { browser, shotOnFailure } from "../browser/page.mjs";

const ADMIN = "admin-key-0123456789abcdef";
const SECRET = "secret-a-0123456789abcdef0123456789";
const shots = repo + "/docs/admin/";

/** freePort returns a loopback port nothing listens on right now. */
function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer().on("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

let nodes = [];
let chrome;
before(async () => {
  const routes = await Promise.all([0, 1, 2].map(() => freePort()));
  nodes = routes.map((_, i) => {
    const peers = routes.filter((_, j) => j !== i).map((p) => "nats://127.0.0.1:" + p).join(",");
    const s = new Server(["--node-id", "node" + (i + 1), "--cluster-name", "admin-test",
      "--cluster-listen", "127.0.0.1:" + routes[i], "--cluster-peers", peers]);
    writeFileSync(s.config, `admin_keys: ["${ADMIN}"]\ndrain_time: "0s"\napps:\n  - name: "a"\n    api_keys: ["app-a-key-0123456789abcdef"]\n    token_secret: "${SECRET}"\n`);
    return s;
  });
  // Started together: clustered nodes wait for each other's JetStream.
  [chrome] = await Promise.all([browser(), ...nodes.map((n) => n.start())]);
  for (const n of nodes) {
    await until(async () => {
      const r = await fetch(n.http + "/v1/nodes", { headers: { Authorization: "Bearer " + ADMIN } }).catch(() => null);
      return r?.status === 200 && (await r.json()).nodes.length === 3;
    }, "every node listing three nodes", 60000);
  }
});
after(async () => {
  await chrome?.close();
  await Promise.all(nodes.map((n) => n.close()));
});

async function client(node, user, device) {
  const ws = new WebSocket(`${node.ws}/v1/ws?token=${token(SECRET, { sub: user, app: "a", device })}`);
  const c = { ws, closed: null, welcome: null };
  ws.on("message", (b) => {
    const f = JSON.parse(b.toString());
    if (f.type === "welcome") c.welcome = f;
  });
  ws.on("close", (code) => (c.closed = code));
  await until(() => c.welcome, "welcome of " + user);
  return c;
}

test("a user on two nodes is listed with both connections, one is kicked (4002); another node is drained from the overview (4000)", async () => {
  const ctx = await chrome.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  page.on("dialog", (d) => d.accept());
  await shotOnFailure(page, "admin-cluster", async () => {
    await page.goto(nodes[0].http + "/admin/");
    await page.fill('[data-testid="login-key"]', ADMIN);
    await page.click('[data-testid="login-submit"]');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="node-row"]').length === 3);

    const on2 = await client(nodes[1], "alice", "phone");
    const on3 = await client(nodes[2], "alice", "laptop");
    await page.waitForFunction(() => document.querySelector('[data-testid="stat-conns"]')?.dataset.value === "2");
    const rows = await page.$$eval('[data-testid="node-row"]', (r) => r.map((e) => ({ id: e.dataset.node, text: e.textContent })));
    assert.deepEqual(rows.map((r) => r.id).sort(), ["node1", "node2", "node3"]);
    for (const r of rows) assert.match(r.text, /MiB/, "a node row without its memory: " + r.text);
    await page.screenshot({ path: shots + "cluster-overview.png" });

    await page.click('[data-testid="nav-users"]');
    await page.fill('[data-testid="user-search"]', "alice");
    await page.press('[data-testid="user-search"]', "Enter");
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="user-conn-row"]').length === 2);
    const conns = await page.$$eval('[data-testid="user-conn-row"]', (r) => r.map((e) => [e.dataset.conn, e.children[1].textContent]).sort());
    assert.deepEqual(conns, [[on2.welcome.conn, "node2"], [on3.welcome.conn, "node3"]].sort());
    await page.waitForSelector('[data-testid="user-inbox"]');
    await page.screenshot({ path: shots + "cluster-users.png" });
    await page.locator(`[data-testid="user-conn-row"][data-conn="${on2.welcome.conn}"] [data-testid="kick-conn"]`).click();
    await until(() => on2.closed, "the kicked client's close");
    assert.equal(on2.closed, 4002);
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="user-conn-row"]').length === 1);
    assert.equal(on3.closed, null);

    // Drain node 3 from node 1's page: its client is told to reconnect elsewhere.
    await page.click('[data-testid="nav-overview"]');
    const drain = page.locator('[data-testid="node-row"][data-node="node3"] [data-testid="drain-node"]');
    await drain.click();
    await until(() => on3.closed, "the drained node's client's close");
    assert.equal(on3.closed, 4000);
    await until(() => nodes[2].proc === null || nodes[2].proc.exitCode !== null, "node 3's exit");
    await page.waitForFunction(() => !document.querySelector('[data-testid="node-row"][data-node="node3"]'), null, { timeout: 30000 });
  });
  await ctx.close();
});
