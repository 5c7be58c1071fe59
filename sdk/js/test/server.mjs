// Test harness: a real `herald serve --dev` process on 127.0.0.1, started
// and stopped by PID, plus helpers that wait on conditions (never on
// fixed sleeps).
import { execFileSync, spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, "../../..");

let bin = process.env.HERALD_BIN;

/** heraldBin is the herald binary: $HERALD_BIN, or one built now with go build. */
export function heraldBin() {
  if (!bin) {
    const dir = mkdtempSync(join(tmpdir(), "herald-bin-"));
    bin = join(dir, "herald");
    execFileSync("go", ["build", "-o", bin, "./cmd/herald"], { cwd: repo, stdio: "inherit" });
    process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  }
  return bin;
}

const SERVING = /msg="herald serving" addr="?([^"\s]+)/;

/**
 * Server is one herald serve --dev process with its own data directory and
 * a config whose rooms "hist-*" keep history. restart() starts it again on
 * the same address and data.
 */
export class Server {
  /** args replace --dev (e.g. an app with a token secret). */
  constructor(args = ["--dev"]) {
    this.args = args;
    this.dir = mkdtempSync(join(tmpdir(), "herald-js-"));
    this.config = join(this.dir, "herald.yaml");
    writeFileSync(this.config, 'room_history:\n  - rooms: "hist-*"\n    size: 1000\n    ttl: "1h"\n');
    this.addr = "127.0.0.1:0";
    this.proc = null;
    this.log = "";
  }

  /** start runs the server and resolves once it logged its address. */
  async start() {
    const args = ["serve", ...this.args, "--addr", this.addr, "--data", join(this.dir, "data"), "--config", this.config];
    const p = spawn(heraldBin(), args, { stdio: ["ignore", "ignore", "pipe"] });
    this.proc = p;
    p.stderr.setEncoding("utf8");
    this.addr = await new Promise((ok, fail) => {
      let buf = "";
      const timer = setTimeout(() => fail(new Error("herald logged no serving line in 30 s:\n" + buf)), 30000);
      p.stderr.on("data", (s) => {
        buf += s;
        this.log += s;
        const m = SERVING.exec(buf);
        if (m) {
          clearTimeout(timer);
          ok(m[1]);
        }
      });
      p.on("exit", (code) => {
        clearTimeout(timer);
        fail(new Error(`herald exited (${code}) before serving:\n` + buf));
      });
    });
    return this;
  }

  get http() {
    return "http://" + this.addr;
  }

  get ws() {
    return "ws://" + this.addr;
  }

  /** stop ends the process by PID with sig and waits for its exit. */
  async stop(sig = "SIGTERM") {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((ok) => p.once("exit", ok));
    process.kill(p.pid, sig);
    await gone;
    this.proc = null;
  }

  /** restart SIGKILLs the process and starts it again on the same address and data. */
  async restart() {
    await this.stop("SIGKILL");
    return this.start();
  }

  /** close stops the server and removes its data. */
  async close() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** push calls POST /v1/push and returns the answer's body. */
  async push(body) {
    const r = await fetch(this.http + "/v1/push", { method: "POST", body: JSON.stringify(body), headers: this.headers });
    if (r.status !== 200) throw new Error(`push: ${r.status} ${await r.text()}`);
    return r.json();
  }

  /** api calls the server API. */
  async api(method, path, body) {
    const r = await fetch(this.http + path, { method, body: body && JSON.stringify(body) });
    return { status: r.status, body: await r.text() };
  }
}

/** until polls cond until it returns a truthy value, or fails after ms. */
export async function until(cond, what, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** memory is a Storage stand-in kept in a Map (the tests' "localStorage"). */
export function memory() {
  const m = new Map();
  return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => void m.set(k, v), map: m };
}

/** token mints an HS256 client token. */
export function token(secret, claims) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const body = b64({ alg: "HS256", typ: "JWT" }) + "." + b64({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims });
  return body + "." + createHmac("sha256", secret).update(body).digest("base64url");
}
