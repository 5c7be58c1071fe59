// Transports: how frames travel. Each one opens one connection, hands every
// server frame to its sink and reports its end once; the client above does
// not know which one it talks to.

import type { ESCtor, WSCtor } from "./herald";

/** A server frame: one JSON object with a type (docs/protocol.md). */
export type Frame = { type: string; [k: string]: any };

/** Where a transport reports what happens to its connection. */
export interface Sink {
  frame(f: Frame): void;
  /** The connection ended; called at most once, never after close(). */
  end(code: number, reason: string): void;
}

/** One open connection of some transport. */
export interface Transport {
  /** Sends one client frame; rejects with {code, reason} if it could not. */
  send(f: object): Promise<void>;
  /** Ends the connection; the sink hears nothing more. */
  close(): void;
}

/** What a transport needs to open a connection. */
export interface Dial {
  base: URL; // http(s):// base URL of the node
  query: Record<string, string>; // dev identity, since, ...
  token?: string;
  sink: Sink;
}


function url(base: URL, path: string, query: Record<string, string>, ws: boolean): string {
  const u = new URL(base.href.replace(/\/$/, "") + path);
  if (ws) u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  for (const k in query) u.searchParams.set(k, query[k]);
  return u.href;
}

const notOpen = { code: 1006, reason: "not connected" };

/** openWS opens a WebSocket on /v1/ws; the token goes in the first auth frame. */
export function openWS(Ctor: WSCtor, d: Dial): Transport {
  const ws = new Ctor(url(d.base, "/v1/ws", d.query, true));
  let done = false;
  const quiet = () => {
    ws.onopen = ws.onmessage = ws.onclose = null;
    ws.onerror = () => {}; // a close follows (Node's ws throws an error nobody listens to)
  };
  const end = (code: number, reason: string) => {
    if (done) return;
    done = true;
    quiet();
    d.sink.end(code, reason);
  };
  quiet();
  ws.onopen = () => {
    if (d.token) ws.send(JSON.stringify({ type: "auth", token: d.token }));
  };
  ws.onmessage = (ev: { data: unknown }) => {
    let f: Frame;
    try {
      f = JSON.parse(String(ev.data));
    } catch {
      return; // not a v1 frame: ignore it, as for unknown types
    }
    if (!done) d.sink.frame(f);
  };
  ws.onclose = (ev: { code: number; reason: string }) => end(ev.code || 1006, ev.reason || "");
  return {
    send(f) {
      if (done || ws.readyState !== 1) return Promise.reject(notOpen);
      ws.send(JSON.stringify(f));
      return Promise.resolve();
    },
    close() {
      done = true;
      quiet();
      try {
        ws.close(1000);
      } catch {
        // already closing
      }
    },
  };
}

// Close codes a server may announce on an SSE stream (an SSE stream has no
// close frame): in an error frame, or a close frame, just before it ends.
const closing = new Set([1001, 1009, 4000, 4001, 4002, 4004, 4005, 4009]);

// An HTTP refusal's status as a close code: 401 as 4001 (a fresh token may
// help), 5xx as 4000 (retry), any other as 1002 (do not retry).
const statusCode = (s: number) => (s === 401 ? 4001 : s >= 500 ? 4000 : 1002);

/**
 * openSSE opens an EventSource on /v1/sse (token as ?token=: an EventSource
 * cannot send headers) and sends client frames by POST /v1/sse/{conn}, in
 * order, with the connection id of the welcome frame.
 */
export function openSSE(Ctor: ESCtor, d: Dial): Transport {
  const q = { ...d.query };
  if (d.token) q.token = d.token;
  const streamURL = url(d.base, "/v1/sse", q, false);
  const es = new Ctor(streamURL);
  let conn = "";
  let done = false;
  let quiet = false; // closed by the client: report nothing
  let last: { code: number; reason: string } | null = null;
  let chain: Promise<unknown> = Promise.resolve(); // POSTs, one at a time
  const stop = () => {
    done = true;
    es.onmessage = es.onerror = null;
    es.close();
  };
  const end = (code: number, reason: string) => {
    if (done) return;
    stop();
    d.sink.end(code, reason);
  };
  es.onmessage = (ev: { data: string }) => {
    let f: Frame;
    try {
      f = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (f.type === "welcome") conn = f.conn;
    if ((f.type === "close" || f.type === "error") && closing.has(f.code)) last = { code: f.code, reason: f.reason || "" };
    if (f.type !== "close" && !done) d.sink.frame(f);
  };
  es.onerror = () => {
    if (done) return;
    if (last) return end(last.code, last.reason);
    if (conn) return end(1006, "stream ended");
    // Refused before the stream started: an EventSource does not say why,
    // so ask once for the status.
    stop();
    fetch(streamURL, { headers: { accept: "text/event-stream" } }).then(
      (r) => {
        r.body?.cancel().catch(() => {});
        if (!quiet) d.sink.end(r.ok ? 1006 : statusCode(r.status), r.ok ? "stream ended" : "HTTP " + r.status);
      },
      () => quiet || d.sink.end(1006, "unreachable"),
    );
  };
  return {
    send(f) {
      if (done || !conn) return Promise.reject(notOpen);
      const post = url(d.base, "/v1/sse/" + encodeURIComponent(conn), q, false);
      const p = chain.then(() =>
        fetch(post, { method: "POST", body: JSON.stringify(f) }).then(
          (r) => {
            if (r.status !== 202) throw { code: r.status === 404 ? 1006 : 4007, reason: "HTTP " + r.status };
          },
          () => {
            throw notOpen;
          },
        ),
      );
      chain = p.catch(() => {});
      return p;
    },
    close() {
      quiet = true;
      stop();
    },
  };
}
