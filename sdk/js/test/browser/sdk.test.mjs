// The IIFE build in real headless Chromium against a real herald serve.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Server } from "../server.mjs";
import { browser, pages, pushUntilAccepted, sdkPage, shotOnFailure } from "./page.mjs";

const srv = new Server();
let web, chrome;
before(async () => {
  [web, chrome] = await Promise.all([pages({ "/": sdkPage() }), browser(), srv.start()]);
});
after(async () => {
  await chrome?.close();
  await web?.close();
  await srv.close();
});

test("user, room and stored pushes; a SIGKILL restart mid-stream loses and repeats nothing", async () => {
  const page = await chrome.newPage();
  await shotOnFailure(page, "sdk-restart", async () => {
    assert.equal(await page.evaluate(() => typeof window.Herald), "undefined");
    await page.goto(`${web.url}/?server=${srv.addr}&user=alice&rooms=news`);
    assert.equal(await page.evaluate(() => typeof Herald === "function" && new Herald("ws://x") instanceof Herald), true);
    await page.waitForFunction(() => got.joined.includes("news"));
    await srv.push({ to: { users: ["alice"] }, data: "live" });
    await srv.push({ to: { rooms: ["news"] }, data: "room" });
    await page.waitForFunction(() => ["live", "room"].every((d) => got.msgs.some((m) => m.data === d)));

    const ids = [];
    for (let i = 1; i <= 30; i++) {
      if (i === 11) await srv.restart(); // SIGKILL, then the same --data and port
      const id = "s" + i;
      await pushUntilAccepted(srv, { id, to: { users: ["alice"] }, data: i, offline: true });
      ids.push(id);
    }
    await page.waitForFunction((n) => got.msgs.filter((m) => m.seq).length >= n, ids.length, { timeout: 60000 });
    // A fence: one more push after the 30, so that a late duplicate would show.
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
    // autoAck acked the last one (so every one) for alice.
    const acked = async () => JSON.parse((await srv.api("GET", "/v1/messages/s30")).body).acked === 1;
    for (const end = Date.now() + 20000; !(await acked()); ) assert.ok(Date.now() < end, "s30 was never acked");
    const states = await page.evaluate(() => got.states);
    assert.ok(states.filter((s) => s === "connected").length >= 2, "no reconnect seen: " + states);
  });
  await page.close();
});
