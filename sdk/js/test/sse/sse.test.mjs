// SSE in real headless Chromium: the SDK falls back to SSE when the page's
// WebSocket always fails, with the same guarantees; a bare EventSource
// resumes with Last-Event-ID. Needs the server's GET /v1/sse (issue 13 §2):
// scripts/test.sh runs this file once that is merged, and it fails loudly
// (never skips) against a server without it.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Server } from "../server.mjs";
import { browser, pages, pushUntilAccepted, sdkPage, shotOnFailure } from "../browser/page.mjs";

// A WebSocket that always fails, as behind a proxy that breaks them.
const brokenWS = `window.WebSocket = class {
  constructor() { this.readyState = 0; setTimeout(() => this.onclose && this.onclose({ code: 1006, reason: "" }), 0); }
  send() {} close() {}
};`;

const bare = `<!doctype html><meta charset="utf-8"><title>eventsource</title><script>
  const q = new URLSearchParams(location.search);
  window.got = [];
  window.opens = 0;
  const es = new EventSource("http://" + q.get("server") + "/v1/sse?user=" + q.get("user"));
  es.onopen = () => opens++;
  es.onmessage = (e) => got.push(JSON.parse(e.data));
</script>`;

const srv = new Server();
let web, chrome;
before(async () => {
  [web, chrome] = await Promise.all([pages({ "/": sdkPage(brokenWS), "/bare": bare }), browser(), srv.start()]);
  const r = await fetch(srv.http + "/v1/sse?user=probe", { headers: { accept: "text/event-stream" } });
  r.body?.cancel();
  if (r.status !== 200 || !/text\/event-stream/.test(r.headers.get("content-type") ?? ""))
    throw new Error(`GET /v1/sse answered ${r.status} ${r.headers.get("content-type")}: this server has no SSE transport`);
});
after(async () => {
  await chrome?.close();
  await web?.close();
  await srv.close();
});

test("the SDK falls back to SSE: user, room, stored pushes, a SIGKILL restart, exact messages", async () => {
  const page = await chrome.newPage();
  await shotOnFailure(page, "sse-fallback", async () => {
    await page.goto(`${web.url}/?server=${srv.addr}&user=sally&rooms=news`);
    await page.waitForFunction(() => got.joined.includes("news"), null, { timeout: 30000 });
    assert.equal(await page.evaluate(() => h.kind), 1, "not on the SSE transport");
    await srv.push({ to: { users: ["sally"] }, data: "live" });
    await srv.push({ to: { rooms: ["news"] }, data: "room" });
    await page.waitForFunction(() => ["live", "room"].every((d) => got.msgs.some((m) => m.data === d)));
    const ids = [];
    for (let i = 1; i <= 30; i++) {
      if (i === 11) await srv.restart();
      const id = "s" + i;
      await pushUntilAccepted(srv, { id, to: { users: ["sally"] }, data: i, offline: true });
      ids.push(id);
    }
    await page.waitForFunction((n) => got.msgs.filter((m) => m.seq).length >= n, ids.length, { timeout: 60000 });
    // A room push is live only: the client may still be rejoining "news"
    // after its resume, so push again until one arrives.
    for (let i = 0; ; i++) {
      await pushUntilAccepted(srv, { to: { rooms: ["news"] }, data: "after" });
      const seen = await page.waitForFunction(() => got.msgs.some((m) => m.data === "after"), null, { timeout: 2000 }).then(() => true, () => false);
      if (seen) break;
      assert.ok(i < 30, "no room push reached the client after the restart");
    }
    const stored = await page.evaluate(() => got.msgs.filter((m) => m.seq).map((m) => [m.id, m.seq]));
    assert.deepEqual(stored.map(([id]) => id), ids);
    assert.deepEqual(stored.map(([, seq]) => seq), ids.map((_, i) => i + 1));
    assert.equal(await page.evaluate(() => h.kind), 1, "left SSE after the restart");
    const acked = async () => JSON.parse((await srv.api("GET", "/v1/messages/s30")).body).acked === 1;
    for (const end = Date.now() + 20000; !(await acked()); ) assert.ok(Date.now() < end, "s30 was never acked over SSE");
  });
  await page.close();
});

test("a bare EventSource resumes with Last-Event-ID across a SIGKILL restart", async () => {
  const page = await chrome.newPage();
  await shotOnFailure(page, "sse-bare", async () => {
    await page.goto(`${web.url}/bare?server=${srv.addr}&user=esme`);
    await page.waitForFunction(() => got.some((f) => f.type === "resumed"));
    const seqs = () => page.evaluate(() => got.filter((f) => f.type === "push").flatMap((f) => f.msgs.map((m) => m.seq)));
    for (let i = 1; i <= 5; i++) await pushUntilAccepted(srv, { to: { users: ["esme"] }, data: i, offline: true });
    await page.waitForFunction(() => got.filter((f) => f.type === "push").flatMap((f) => f.msgs).length >= 5);
    await srv.restart();
    for (let i = 6; i <= 10; i++) await pushUntilAccepted(srv, { to: { users: ["esme"] }, data: i, offline: true });
    await page.waitForFunction(() => opens >= 2 && got.filter((f) => f.type === "push").flatMap((f) => f.msgs).length >= 10, null, { timeout: 60000 });
    await pushUntilAccepted(srv, { to: { users: ["esme"] }, data: "fence" });
    await page.waitForFunction(() => got.some((f) => f.type === "push" && f.msgs.some((m) => m.data === "fence")), null, { timeout: 30000 });
    assert.deepEqual((await seqs()).filter(Boolean), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const resumed = await page.evaluate(() => got.filter((f) => f.type === "resumed"));
    assert.equal(resumed.at(-1).since, 5, "the reconnect did not resume from Last-Event-ID 5");
  });
  await page.close();
});
