// Shared pieces of the Pusher tests: the app's identity, the official
// server SDK and pusher-js clients pointed at a spawned herald, and waits
// on pusher-js events.
import { createServer } from "node:net";
import { writeFileSync } from "node:fs";
import Pusher from "pusher-js";
import PusherServer from "pusher";
import { Server, until } from "../server.mjs";

export const APP = { appId: "1001", key: "shop-pusher-key", secret: "shop-pusher-secret" };

/** A 32-byte master key for private-encrypted- channels (base64). */
export const MASTER_KEY = Buffer.alloc(32, 7).toString("base64");

/**
 * pusherNode is a herald serve process with app "shop" and its Pusher
 * identity in a config file (client events on, presence departures after
 * offline_delay); extra are more serve flags (cluster ones).
 */
export function pusherNode(extra = [], offlineDelay = "300ms") {
  const s = new Server(extra);
  writeFileSync(s.config, `limits:\n  offline_delay: "${offlineDelay}"\napps:\n  - name: "shop"\n    api_keys: ["shop-api-key-0123456789"]\n` +
    `    token_secret: "shop-secret-0123456789abcdef0123"\n    pusher:\n      app_id: "${APP.appId}"\n      key: "${APP.key}"\n` +
    `      secret: "${APP.secret}"\n      client_events: true\n`);
  s.headers = { Authorization: "Bearer shop-api-key-0123456789", "Content-Type": "application/json" };
  return s;
}

export function hostPort(addr) {
  const i = addr.lastIndexOf(":");
  return [addr.slice(0, i), Number(addr.slice(i + 1))];
}

/** sdk is the official server SDK for the app at addr, signing with secret. */
export function sdk(addr, { secret = APP.secret, ...opts } = {}) {
  const [host, port] = hostPort(addr);
  return new PusherServer({ ...APP, secret, host, port: String(port), useTLS: false, ...opts });
}

/**
 * client is a pusher-js client of addr: channels are authorized by
 * authServer (an SDK), presence ones as member (channel_data), and a
 * signin() authenticates as user (user_data).
 */
export function client(addr, { key = APP.key, authServer = sdk(addr), member, user, authorize } = {}) {
  const [host, port] = hostPort(addr);
  const p = new Pusher(key, {
    cluster: "herald",
    wsHost: host,
    wsPort: port,
    forceTLS: false,
    enabledTransports: ["ws"],
    disableStats: true,
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, cb) => {
        try {
          cb(null, authorize ? authorize(socketId, channelName) : authServer.authorizeChannel(socketId, channelName, member));
        } catch (e) {
          cb(e, null);
        }
      },
    },
    userAuthentication: {
      customHandler: ({ socketId }, cb) => {
        try {
          cb(null, authServer.authenticateUser(socketId, user));
        } catch (e) {
          cb(e, null);
        }
      },
    },
  });
  p.errors = []; // pusher:error frames and close codes (pusher-js reports both as errors)
  p.messages = [];
  p.connection.bind("error", (e) => p.errors.push(e));
  p.connection.bind("message", (m) => p.messages.push(m));
  return p;
}

export const connected = (p) => until(() => p.connection.state === "connected", "pusher-js connected");

/** subscribe subscribes and resolves with the channel once Herald confirmed it. */
export function subscribe(p, name) {
  const ch = p.subscribe(name);
  return new Promise((ok, fail) => {
    ch.bind("pusher:subscription_succeeded", () => ok(ch));
    ch.bind("pusher:subscription_error", (e) => fail(new Error("subscription_error " + JSON.stringify(e))));
  });
}

/** events collects a channel's events of one name, with their metadata. */
export function events(ch, name) {
  const got = [];
  ch.bind(name, (d, meta) => got.push(meta?.user_id !== undefined ? { ...d, from: meta.user_id } : d));
  return got;
}

/** codes lists the pusher:error and close codes a client got. */
export const codes = (p) => p.errors.map((e) => e.error?.data?.code ?? e.data?.code);

/** frames lists what a client received of one event (optionally of one channel). */
export const frames = (p, event, channel) => p.messages.filter((m) => m.event === event && (!channel || m.channel === channel));

/** freePort returns a loopback port nothing listens on right now. */
export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer().on("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

export { Server, until };
