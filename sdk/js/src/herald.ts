// Herald: a client of a Herald push server (docs/sdk-js.md). A small state
// machine: idle → connecting → connected → disconnected → connecting … until
// close() or a close code that forbids a reconnect (policy.ts).

import { backoff, verdict } from "./policy";
import { type Frame, type Transport, openSSE, openWS } from "./transport";

/** A WebSocket constructor (the standard one, or e.g. the ws package's). */
export type WSCtor = new (url: string) => any;
/** An EventSource constructor. */
export type ESCtor = new (url: string) => any;

/** A message of a push frame. */
export interface Message {
  id: string;
  data: unknown;
  ts: number;
  seq?: number;
  room?: string;
  pos?: number;
  from?: string;
  /** The message's event name (a push's `event`, or a Pusher client event's); absent for "message". */
  event?: string;
}

/** A refusal: an error frame, a close code, or a client-side error (code 0). */
export interface HeraldError {
  code: number;
  reason: string;
}

/** The connection state. */
export type State = "connecting" | "connected" | "disconnected";

/** Details of a "disconnected" state: why, and the delay before the next attempt (none: stopped). */
export interface Disconnect extends HeraldError {
  retryIn?: number;
}

/** A replay said complete:false: the stored messages between since and to are partly gone. */
export interface Gap {
  since: number;
  to: number;
  room?: string;
}

/** The targets of a send. */
export interface Targets {
  users?: string[];
  rooms?: string[];
}

/** The part of the Web Storage API the client uses. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** Options of a Herald client. */
export interface Options {
  /** A token, or a (sync or async) function called before every connect. */
  token?: string | (() => string | Promise<string>);
  /** Extra query parameters (dev mode identity: app, user, device). */
  params?: Record<string, string>;
  /** Ack each stored message once every "message" handler returned (default true). */
  autoAck?: boolean;
  /** Transports in order of preference; the first that works is kept. Default ["websocket", "sse"]. */
  transports?: ("websocket" | "sse")[];
  /** Where the last seq and room positions survive a reload; false: memory only. Default localStorage where it exists. */
  storage?: StorageLike | false;
  /** A WebSocket constructor; default globalThis.WebSocket. */
  WebSocket?: WSCtor;
  /** An EventSource constructor; default globalThis.EventSource. */
  EventSource?: ESCtor;
}

/** The events and the arguments their handlers get. */
export interface Events {
  message: (m: Message) => void;
  state: (s: State, info?: Disconnect) => void;
  gap: (g: Gap) => void;
  recall: (r: { id: string }) => void;
  error: (e: HeraldError) => void;
}

// A join or leave waiting for its answer. done is absent for the client's
// own rejoins after a reconnect.
interface Op {
  type: "join" | "leave";
  room: string;
  since?: number;
  sent?: boolean;
  joined?: boolean;
  done?: (e?: HeraldError) => void;
}

const KEEP = 1000; // ids and seqs remembered for de-duplication

/** Herald is a client of a Herald server: one logical connection that reconnects and resumes by itself. */
export class Herald {
  private base: URL | null = null;
  private opts: Options;
  private handlers: Record<string, Set<Function>> = {};
  private t: Transport | null = null;
  private gen = 0; // the attempt whose transport may speak
  private stopped = true;
  private connected = false;
  private attempt = 0;
  private authFails = 0;
  private kind = 0; // index in transports of the one in use
  private kept = false; // a transport reached welcome: it stays
  private timer: ReturnType<typeof setTimeout> | undefined;
  private ping: ReturnType<typeof setInterval> | undefined;
  private heard = true;
  private replaying = false; // the inbox replay of this connection runs
  private user = "";
  private seq = 0; // highest seq seen
  private floor = 0; // seqs up to here were seen before a reload: duplicates
  private acked = 0;
  private toAck = 0; // manual ack waiting for a connection
  private pos: Record<string, number> = {};
  private rooms = new Set<string>();
  private ops: Op[] = [];
  private seen: (string | number)[] = [];
  private seenSet = new Set<string | number>();
  private store: StorageLike | null;

  /** Creates a client of the node at url (ws://, wss://, http:// or https://); connect() starts it. */
  constructor(url: string, opts: Options = {}) {
    this.opts = opts;
    try {
      const u = new URL(url);
      if (/^(ws|http)s?:$/.test(u.protocol)) {
        u.protocol = u.protocol.replace("ws", "http");
        this.base = u;
      }
    } catch {
      // reported by connect()
    }
    let s: StorageLike | null = null;
    if (opts.storage) s = opts.storage;
    else if (opts.storage !== false) {
      try {
        s = (globalThis as any).localStorage ?? null;
      } catch {
        // storage blocked (sandboxed frame): memory only
      }
    }
    this.store = s;
    this.user = opts.params?.user ?? sub(opts.token);
    this.load();
  }

  /** Adds a handler for an event and returns a function that removes it. */
  on<K extends keyof Events>(event: K, fn: Events[K]): () => void {
    const set = (this.handlers[event] ??= new Set());
    set.add(fn);
    return () => set.delete(fn);
  }

  /** Starts connecting (again, after close()). */
  connect(): void {
    if (!this.stopped) return;
    this.stopped = false;
    if (!this.base) return this.stop({ code: 0, reason: "invalid URL" });
    this.open();
  }

  /** Joins a room; resolves on "joined", rejects with {code, reason}. The room is rejoined after every reconnect. */
  join(room: string): Promise<void> {
    this.rooms.add(room);
    return this.op("join", room);
  }

  /** Leaves a room; resolves on "left". */
  leave(room: string): Promise<void> {
    this.rooms.delete(room);
    delete this.pos[room];
    return this.op("leave", room);
  }

  /** Acks every stored message up to seq for this user (all devices); for autoAck: false. */
  ack(seq: number): void {
    if (seq <= this.acked) return;
    this.toAck = Math.max(this.toAck, seq);
    if (this.connected && !this.replaying) this.flushAck();
  }

  /** Sends data to users and rooms of the app; resolves once handed to the server (errors arrive as "error" events). */
  send(to: Targets, data: unknown): Promise<void> {
    if (!this.t || !this.connected) return Promise.reject({ code: 1006, reason: "not connected" });
    return this.t.send({ type: "send", to, data });
  }

  /** Closes the connection for good; no timer is left running. */
  close(): void {
    this.stop({ code: 1000, reason: "closed by the client" });
  }

  // --- connecting ---

  private async open(): Promise<void> {
    const gen = ++this.gen;
    this.emit("state", "connecting");
    let token: string | undefined;
    try {
      const tk = this.opts.token;
      token = typeof tk === "function" ? await tk() : tk;
    } catch (e) {
      if (gen === this.gen) this.ended(gen, 1006, "token: " + String(e));
      return;
    }
    if (gen !== this.gen || this.stopped) return;
    const kinds = this.opts.transports ?? ["websocket", "sse"];
    const kind = kinds[this.kind];
    const g = globalThis as any;
    const Ctor = kind === "sse" ? (this.opts.EventSource ?? g.EventSource) : (this.opts.WebSocket ?? g.WebSocket);
    if (!Ctor) return this.ended(gen, 1002, "no " + kind + " in this environment");
    const query = { ...this.opts.params };
    if (this.seq > 0) query.since = String(this.seq);
    const sink = {
      frame: (f: Frame) => {
        if (gen === this.gen) this.frame(f);
      },
      end: (code: number, reason: string) => this.ended(gen, code, reason),
    };
    this.replaying = true;
    try {
      const dial = { base: this.base!, query, token, sink };
      this.t = kind === "sse" ? openSSE(Ctor, dial) : openWS(Ctor, dial);
    } catch (e) {
      return this.stop({ code: 0, reason: String(e) }); // e.g. a URL the constructor refuses
    }
  }

  // ended handles the end of attempt gen's connection: the one place that
  // applies the close-code policy, the transport fallback and the backoff.
  private ended(gen: number, code: number, reason: string): void {
    if (gen !== this.gen || this.stopped) return;
    const wasUp = this.connected;
    this.drop();
    const info = { code, reason };
    let v = verdict(code);
    if (v === "auth") {
      // A fresh token is worth one more try.
      v = typeof this.opts.token === "function" && ++this.authFails < 2 ? "retry" : "stop";
      if (v === "retry") this.emit("error", info);
    }
    if (v === "stop") return this.stop(info);
    const kinds = this.opts.transports ?? ["websocket", "sse"];
    let delay: number;
    if (!wasUp && !this.kept && code !== 4001 && this.kind + 1 < kinds.length) {
      this.kind++; // this transport never worked: try the next one now
      delay = 0;
    } else {
      if (!this.kept) this.kind = 0;
      delay = code === 4004 || code === 4001 ? backoff(0) : backoff(this.attempt++);
    }
    this.emit("state", "disconnected", { ...info, retryIn: delay });
    this.timer = setTimeout(() => this.open(), delay);
  }

  // stop ends everything: no transport, no timer, pending ops rejected.
  private stop(info: HeraldError): void {
    const was = !this.stopped || this.t;
    this.stopped = true;
    this.gen++;
    this.drop();
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const o of this.ops.splice(0)) o.done?.(info);
    if (info.code !== 1000) this.emit("error", info);
    if (was) this.emit("state", "disconnected", info);
  }

  // drop forgets the current transport and its timers.
  private drop(): void {
    this.t?.close();
    this.t = null;
    this.connected = false;
    clearInterval(this.ping);
    this.ping = undefined;
    for (const o of this.ops) o.sent = o.joined = false;
  }

  // --- frames ---

  private frame(f: Frame): void {
    this.heard = true;
    switch (f.type) {
      case "welcome":
        return this.welcome(f);
      case "push":
        return this.push(f.msgs ?? []);
      case "resumed":
        if (!f.complete) this.emit("gap", { since: f.since, to: f.to, ...(f.room !== undefined && { room: f.room }) });
        if (f.room === undefined) {
          this.replaying = false;
          this.flushAck();
          this.rejoin();
        } else this.answer("join", f.room, true);
        return;
      case "joined":
        return this.answer("join", f.room, false);
      case "left":
        return this.answer("leave", f.room, false);
      case "recall":
        this.emit("recall", { id: f.id });
        return;
      case "error":
        return this.error(f as unknown as HeraldError);
    }
  }

  private welcome(f: Frame): void {
    this.connected = true;
    this.kept = true;
    this.attempt = 0;
    this.authFails = 0;
    if (f.user && f.user !== this.user) {
      this.user = f.user;
      this.load();
    }
    const every = (f.heartbeat || 25) * 1000;
    this.heard = true;
    this.ping = setInterval(() => {
      if (!this.heard) return this.ended(this.gen, 4005, "no answer to ping");
      this.heard = false;
      this.t?.send({ type: "ping" }).catch(() => {});
    }, every);
    this.emit("state", "connected");
  }

  private push(msgs: Message[]): void {
    let ack = 0;
    let ok = true;
    for (const m of msgs) {
      if (m.pos && m.room !== undefined && this.rooms.has(m.room)) this.pos[m.room] = Math.max(this.pos[m.room] ?? 0, m.pos);
      const dup = this.dup(m.id) || (m.seq !== undefined && (m.seq <= this.floor || this.dup(m.seq)));
      if (m.seq !== undefined) this.seq = Math.max(this.seq, m.seq);
      if (dup) continue;
      const done = this.emit("message", m);
      ok &&= done;
      if (ok && m.seq !== undefined) ack = Math.max(ack, m.seq);
    }
    this.save();
    if (ack && this.opts.autoAck !== false) this.ack(ack);
  }

  // dup reports whether key (an id or a seq) was seen, and remembers it.
  private dup(key: string | number): boolean {
    if (this.seenSet.has(key)) return true;
    this.seenSet.add(key);
    if (this.seen.push(key) > KEEP) this.seenSet.delete(this.seen.shift()!);
    return false;
  }

  private error(e: HeraldError): void {
    if (e.code === 4007 && this.replaying && /^since /.test(e.reason)) {
      // The server has fewer messages than we saw (its data was reset):
      // start over from its acked position.
      this.seq = this.floor = this.acked = 0;
      this.t?.send({ type: "resume", since: 0 }).catch(() => {});
    }
    const o = this.ops[0];
    if (o?.sent && (e.reason.includes(JSON.stringify(o.room)) || /room|replay/.test(e.reason))) {
      if (o.joined) {
        delete this.pos[o.room]; // joined, but no history from there
        this.next(undefined);
      } else this.next(e);
    }
    this.emit("error", { code: e.code, reason: e.reason });
  }

  // --- rooms: one join or leave in flight at a time, in order ---

  private op(type: "join" | "leave", room: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.ops.push({ type, room, done: (e) => (e ? reject(e) : resolve()) });
      if (this.ops.length === 1) this.pump();
    });
  }

  // rejoin puts the rooms of the last connection first in line after a
  // reconnect (rooms with history from their last position); leaves still
  // waiting are done: the new connection is in no room.
  private rejoin(): void {
    const waiting = this.ops.filter((o) => o.type === "join").map((o) => o.room);
    for (const o of this.ops.filter((o) => o.type === "leave")) o.done?.();
    const again = [...this.rooms].filter((r) => !waiting.includes(r)).map((room): Op => ({ type: "join", room }));
    this.ops = [...again, ...this.ops.filter((o) => o.type === "join")];
    this.pump();
  }

  private pump(): void {
    const o = this.ops[0];
    if (!o || o.sent || !this.t || !this.connected || this.replaying) return;
    o.sent = true;
    o.since = o.type === "join" ? this.pos[o.room] : undefined;
    const f = o.since !== undefined ? { type: o.type, room: o.room, since: o.since } : { type: o.type, room: o.room };
    this.t.send(f).catch((e) => o === this.ops[0] && this.next(e));
  }

  // answer takes a joined, left or a room's resumed frame.
  private answer(type: "join" | "leave", room: string, resumed: boolean): void {
    const o = this.ops[0];
    if (!o?.sent || o.type !== type || o.room !== room) return;
    if (o.since !== undefined && !resumed) o.joined = true;
    else this.next(undefined);
  }

  private next(e: HeraldError | undefined): void {
    this.ops.shift()?.done?.(e);
    this.pump();
  }

  // --- acks and storage ---

  private flushAck(): void {
    if (this.toAck <= this.acked || !this.t) return;
    const seq = this.toAck;
    this.t.send({ type: "ack", seq }).then(() => {
      this.acked = Math.max(this.acked, seq);
    }, () => {});
  }

  private key(): string {
    return "herald:" + this.base?.href + ":" + this.user;
  }

  private load(): void {
    try {
      const v = JSON.parse(this.store?.getItem(this.key()) ?? "{}");
      this.seq = Math.max(this.seq, v.seq ?? 0);
      this.floor = Math.max(this.floor, v.seq ?? 0);
      this.pos = { ...v.pos, ...this.pos };
    } catch {
      // nothing stored, or garbage: start from the server's acked position
    }
  }

  private save(): void {
    try {
      this.store?.setItem(this.key(), JSON.stringify({ seq: this.seq, pos: this.pos }));
    } catch {
      // storage full or blocked: memory only
    }
  }

  // emit calls every handler of event; it reports whether all returned
  // (a handler that throws is reported asynchronously, not swallowed).
  private emit<K extends keyof Events>(event: K, ...args: Parameters<Events[K]>): boolean {
    let ok = true;
    for (const fn of this.handlers[event] ?? []) {
      try {
        fn(...args);
      } catch (e) {
        ok = false;
        queueMicrotask(() => {
          throw e;
        });
      }
    }
    return ok;
  }
}

// sub is the user (sub claim) of a JWT, or "" when token is no JWT string.
function sub(token: Options["token"]): string {
  try {
    if (typeof token !== "string") return "";
    const b = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(b)).sub ?? "";
  } catch {
    return "";
  }
}
