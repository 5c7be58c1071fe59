// Browser test helpers: a tiny HTTP server on loopback for the test pages
// and the IIFE build, headless Debian Chromium driven by playwright-core,
// and a screenshot of the page when a test fails.
import { createServer } from "node:http";
import { mkdirSync, readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const dist = new URL("../../dist/herald.js", import.meta.url);
const results = new URL("../../test-results/", import.meta.url);

/** pages serves /herald.js and, at any other path, the html page body given per path. */
export async function pages(html) {
  const srv = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (path === "/herald.js") {
      res.writeHead(200, { "content-type": "text/javascript" });
      return res.end(readFileSync(dist));
    }
    const body = html[path];
    if (!body) return res.writeHead(404).end();
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(body);
  });
  await new Promise((ok) => srv.listen(0, "127.0.0.1", ok));
  return { url: "http://127.0.0.1:" + srv.address().port, close: () => new Promise((ok) => srv.close(ok)) };
}

/** browser launches headless /usr/bin/chromium. */
export function browser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
}

/** shotOnFailure runs fn(page) and saves test-results/<name>.png if it throws. */
export async function shotOnFailure(page, name, fn) {
  try {
    return await fn();
  } catch (e) {
    mkdirSync(results, { recursive: true });
    const file = new URL(name.replace(/\W+/g, "-") + ".png", results);
    await page.screenshot({ path: file.pathname }).catch(() => {});
    console.error("screenshot of the failed page: " + file.pathname);
    throw e;
  }
}

/**
 * sdkPage is a page that loads the IIFE build with one script tag, connects
 * as user to the server named in ?server=, joins the rooms in ?rooms= and
 * records every event in window.got. before runs first (e.g. to break the
 * page's WebSocket).
 */
export function sdkPage(before = "") {
  return `<!doctype html><meta charset="utf-8"><title>herald</title>
<script>${before}</script>
<script src="/herald.js"></script>
<pre id="log"></pre>
<script>
  const q = new URLSearchParams(location.search);
  window.got = { msgs: [], states: [], errors: [], joined: [] };
  const h = (window.h = new Herald("ws://" + q.get("server"), { params: { user: q.get("user") } }));
  const log = (s) => (document.getElementById("log").textContent += s + "\\n");
  h.on("message", (m) => { got.msgs.push(m); log(JSON.stringify(m)); });
  h.on("state", (s, info) => { got.states.push(s); log(s + " " + JSON.stringify(info ?? {})); });
  h.on("error", (e) => got.errors.push(e));
  h.connect();
  for (const r of (q.get("rooms") || "").split(",").filter(Boolean)) h.join(r).then(() => got.joined.push(r));
</script>`;
}

/** pushUntilAccepted pushes body with its id, retrying while the server is down. */
export async function pushUntilAccepted(srv, body) {
  for (const end = Date.now() + 60000; ; ) {
    try {
      return await srv.push(body);
    } catch (e) {
      if (!(e instanceof TypeError) || Date.now() > end) throw e; // TypeError: fetch could not connect
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
