// Herald admin UI: a hash-routed single page over the /v1 API. Every
// operation is a call of the documented API, made same-origin with the
// session cookie and the session's CSRF header; the UI has no operation of
// its own. No dependencies, no build step.

const CSRF_HEADER = "X-Herald-CSRF";
const PAGES = ["overview", "users", "rooms", "messages", "push", "tail", "webhooks"];
const POLL_MS = 2000;
const WINDOW_MS = 15 * 60 * 1000; // the graphs' span: the server keeps 15 minutes
const RECENT_PAGE = 20;

/** state is the session: null until known. */
let state = null;
let app = ""; // the app every page acts on
let cleanup = []; // what the current page must stop when it is left

// ---- DOM helpers (text only: nothing from the server is parsed as HTML)

function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "testid") el.dataset.testid = v;
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined && k !== false) el.append(k instanceof Node ? k : String(k));
  return el;
}

/** fill replaces el's children with kids, skipping null, undefined and false. */
function fill(el, ...kids) {
  el.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined && k !== false));
}

function mount(...kids) {
  const root = document.getElementById("root");
  root.replaceChildren(...kids);
}

// ---- API

class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** api calls the server API with the session; a 401 shows the login page. */
async function api(method, path, body) {
  const headers = {};
  if (state && state.csrf) headers[CSRF_HEADER] = state.csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
  if (r.status === 204) return null;
  const text = await r.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!r.ok) {
    const e = json && json.error ? json.error : { code: "http_" + r.status, message: text || r.statusText };
    if (r.status === 401 && state) {
      state = null;
      showLogin("Your session has ended: log in again.");
    }
    throw new APIError(r.status, e.code, e.message);
  }
  return json;
}

/** q is the query string naming the app, for admin sessions. */
function q(extra = {}) {
  const p = new URLSearchParams();
  if (state && state.admin && app) p.set("app", app);
  for (const [k, v] of Object.entries(extra)) if (v) p.set(k, v);
  const s = p.toString();
  return s ? "?" + s : "";
}

const enc = encodeURIComponent;
const readOnly = () => !state.admin;

// ---- login

function showLogin(message) {
  stopPage();
  const key = h("input", { type: "password", testid: "login-key", placeholder: "API key", autocomplete: "off", required: true });
  const err = h("p", { class: "error", testid: "login-error" }, message || "");
  const submit = async (ev) => {
    ev.preventDefault();
    err.textContent = "";
    try {
      const s = await api("POST", "/admin/login", { key: key.value });
      key.value = ""; // the key is never kept or shown after login
      start(s);
    } catch (e) {
      key.value = "";
      err.textContent = e.status === 429 ? "Too many failed logins: wait and try again." : "Login refused: " + e.message;
    }
  };
  mount(
    h("form", { class: "login", onsubmit: submit },
      h("h1", {}, "Herald admin"),
      h("label", {}, "Admin or app API key", h("br"), key),
      h("button", { type: "submit", testid: "login-submit" }, "Log in"),
      err,
      h("p", { class: "muted" }, "An admin key sees and steers every app; an app key gives a read-only view of its app."),
    ),
  );
  key.focus();
}

async function logout() {
  try {
    await api("POST", "/admin/logout");
  } catch {
    /* the session is gone either way */
  }
  state = null;
  showLogin("Logged out.");
}

// ---- shell and routing

function start(s) {
  state = s;
  app = s.admin ? localStorage.getItem("herald-admin-app") || s.apps[0] || "" : s.app;
  if (!s.apps.includes(app)) app = s.apps[0] || "";
  if (!PAGES.includes(route().page)) location.hash = "#/overview";
  render();
}

function route() {
  const [page, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  return { page: page || "overview", arg: decodeURIComponent(rest.join("/")) };
}

function stopPage() {
  for (const f of cleanup) f();
  cleanup = [];
}

function header(page) {
  const nav = PAGES.map((p) => h("a", { href: "#/" + p, testid: "nav-" + p, class: p === page ? "on" : null }, p[0].toUpperCase() + p.slice(1)));
  const select = h("select", { testid: "app-select", disabled: !state.admin || state.apps.length < 2, onchange: (e) => {
    app = e.target.value;
    localStorage.setItem("herald-admin-app", app);
    render();
  } }, state.apps.map((a) => h("option", { value: a, selected: a === app }, a)));
  const who = state.dev ? "dev mode" : state.admin ? "admin" : "app " + state.app + " (read-only)";
  return h("header", {},
    h("span", { class: "brand" }, "Herald"),
    h("nav", {}, nav),
    h("label", { class: "muted" }, "app ", select),
    h("span", { class: "muted", testid: "session-who" }, who),
    state.dev ? null : h("button", { class: "plain", testid: "logout", onclick: logout }, "Log out"),
  );
}

function render() {
  if (!state) return;
  stopPage();
  const { page, arg } = route();
  const body = h("main", { testid: "page-" + page });
  mount(header(page), body);
  (PAGE_RENDER[page] || overview)(body, arg);
}

window.addEventListener("hashchange", render);

// ---- overview

const SVG = "http://www.w3.org/2000/svg";
const GRAPHS = [
  ["conns", "Connections"], ["users", "Users"], ["pushes", "Pushes / s"], ["deliveries", "Deliveries / s"],
  ["stored", "Stored messages / s"], ["acks", "Acks / s"], ["webhook_backlog", "Webhook backlog"],
];

function svgEl(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

/** num shows a count or a rate briefly: 12, 3.5, 1.2k, 4.1M. */
function num(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (v >= 1e4) return (v / 1e3).toFixed(1) + "k";
  return Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1);
}

/** graph draws one series of the history over the last 15 minutes up to now. */
function graph(key, label, points, now) {
  const W = 360, H = 120, top = 14, bottom = 18, x0 = now - WINDOW_MS;
  const vals = points.map((p) => p[key] ?? 0);
  const max = Math.max(1, ...vals);
  const x = (t) => ((t - x0) / WINDOW_MS) * W;
  const y = (v) => H - bottom - (v / max) * (H - top - bottom);
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label + ", last 15 minutes" });
  svg.dataset.testid = "graph-" + key;
  svg.dataset.points = String(points.length);
  svg.dataset.last = String(vals.length ? vals[vals.length - 1] : "");
  for (const f of [0, 0.5, 1]) svg.append(svgEl("line", { x1: 0, x2: W, y1: y(max * f), y2: y(max * f), class: "grid" }));
  for (const m of [15, 10, 5, 0]) {
    svg.append(svgEl("text", { x: x(now - m * 60000), y: H - 4, "text-anchor": m === 15 ? "start" : m === 0 ? "end" : "middle" }, m ? `-${m}m` : "now"));
  }
  svg.append(svgEl("text", { x: 2, y: 10 }, num(max)));
  const xy = points.map((p, i) => `${x(p.at).toFixed(1)},${y(vals[i]).toFixed(1)}`);
  if (points.length > 1) {
    svg.append(svgEl("polygon", { points: `${x(points[0].at).toFixed(1)},${y(0)} ${xy.join(" ")} ${x(points[points.length - 1].at).toFixed(1)},${y(0)}`, class: "area" }));
    svg.append(svgEl("polyline", { points: xy.join(" ") }));
  }
  if (points.length) {
    const [cx, cy] = xy[xy.length - 1].split(",");
    svg.append(svgEl("circle", { cx, cy, r: 2.5 }));
  }
  return h("div", { class: "card graph" },
    h("div", { class: "label" }, label),
    h("div", { class: "value small" }, vals.length ? num(vals[vals.length - 1]) : "–"),
    svg);
}

function card(label, testid, value) {
  return h("div", { class: "card" },
    h("div", { class: "label" }, label),
    h("div", { class: "value", testid, "data-value": value }, value));
}

/** mergePoints adds fresh points to hist (a slot seen again replaces the
 * old one, which may have missed a node) and drops those older than the
 * window. */
function mergePoints(hist, fresh, now) {
  const bySlot = new Map(hist.map((p) => [p.at, p]));
  for (const p of fresh) bySlot.set(p.at, p);
  return [...bySlot.values()].filter((p) => p.at > now - WINDOW_MS).sort((a, b) => a.at - b.at);
}

function overview(main) {
  main.append(h("h1", {}, "Overview"));
  const cards = h("div", { class: "cards" });
  const graphs = h("div", { class: "graphs", testid: "graphs" }, h("p", { class: "muted" }, "Loading…"));
  const nodes = h("div");
  const status = h("p", { class: "muted" });
  main.append(cards, h("h2", {}, "Nodes"), nodes, status, h("h2", {}, "Last 15 minutes"), graphs,
    h("p", { class: "muted" }, "One point per 5 seconds, summed over the live nodes; each node keeps its last 15 minutes in memory (a restarted node starts empty)."));
  let last = null;
  let hist = null;
  let timer = 0;
  let alive = true;
  cleanup.push(() => {
    alive = false;
    clearTimeout(timer);
  });
  const tick = async () => {
    try {
      // The last point again: a node may have sampled its slot since.
      const since = hist && hist.length ? hist[hist.length - 1].at - 1 : 0;
      const [st, nl, hs] = await Promise.all([api("GET", "/v1/stats" + q()), api("GET", "/v1/nodes?draining=1"),
        api("GET", "/v1/stats/history" + q({ since: since ? String(since) : "" }))]);
      if (!alive) return;
      const now = Date.now();
      let pr = 0;
      let dr = 0;
      if (last) {
        const dt = (now - last.at) / 1000;
        pr = Math.max(0, (st.pushes - last.pushes) / dt);
        dr = Math.max(0, (st.deliveries - last.deliveries) / dt);
      }
      last = { at: now, pushes: st.pushes, deliveries: st.deliveries };
      hist = mergePoints(hist || [], hs.points || [], now);
      cards.replaceChildren(
        card("Connections", "stat-conns", st.conns),
        card("Users", "stat-users", st.users),
        card("Pushes / s", "stat-pushes-rate", pr.toFixed(1)),
        card("Deliveries / s", "stat-deliveries-rate", dr.toFixed(1)),
        card("Rooms", "stat-rooms", st.rooms),
      );
      graphs.replaceChildren(...GRAPHS.map(([k, label]) => graph(k, label, hist, now)));
      nodes.replaceChildren(nodeTable(nl.nodes || [], tick));
      const missing = [...new Set([...(st.missing || []), ...(hs.missing || [])])];
      status.textContent = (missing.length ? "Partial: nodes " + missing.join(", ") + " did not answer. " : "") +
        "Updated " + new Date(now).toLocaleTimeString() + ".";
    } catch (e) {
      if (alive) status.textContent = "Could not refresh: " + e.message;
    }
    if (alive && state) timer = setTimeout(tick, POLL_MS);
  };
  tick();
}

/** duration shows seconds as "3d 4h", "2h 5m", "4m 10s". */
function duration(sec) {
  if (!sec) return "";
  const d = Math.floor(sec / 86400), hr = Math.floor((sec % 86400) / 3600), m = Math.floor((sec % 3600) / 60);
  if (d) return `${d}d ${hr}h`;
  if (hr) return `${hr}h ${m}m`;
  return m ? `${m}m ${sec % 60}s` : `${sec}s`;
}

const mib = (b) => (b ? (b / 1048576).toFixed(0) + " MiB" : "");

/** nodeTable lists the nodes; an admin session may drain one (confirmed). */
function nodeTable(list, refresh) {
  const drain = (n) => async (ev) => {
    if (!confirm(`Drain node ${n.id}? It takes no new connections, moves its ${n.conns} client(s) to other nodes over its drain time, then exits.`)) return;
    ev.target.disabled = true;
    try {
      await api("POST", "/v1/admin/drain", { node: n.id });
    } catch (e) {
      alert("Drain failed: " + e.message);
    }
    refresh();
  };
  return h("table", {},
    h("tr", {}, ["Node", "Address", "Version", "Uptime", "Connections", "Load", "CPU", "RSS", "State", ""].map((t) => h("th", {}, t))),
    list.map((n) =>
      h("tr", { testid: "node-row", "data-node": n.id, "data-draining": String(!!n.draining) },
        h("td", {}, n.id), h("td", {}, n.addr), h("td", {}, n.version || ""), h("td", { "data-value": n.uptime ?? 0 }, duration(n.uptime)),
        h("td", { testid: "node-conns", "data-value": n.conns }, n.conns),
        h("td", {}, typeof n.load === "number" ? n.load.toFixed(2) : n.load ?? ""),
        h("td", { "data-value": n.cpu ?? 0 }, n.cpu !== undefined ? n.cpu.toFixed(1) + " %" : ""),
        h("td", { "data-value": n.rss ?? 0 }, mib(n.rss)),
        h("td", { testid: "node-state" }, n.draining ? "draining" : "live"),
        h("td", {}, readOnly() || n.draining ? "" : h("button", { class: "danger", testid: "drain-node", onclick: drain(n) }, "Drain")))));
}

// ---- users

function searchForm(testid, placeholder, initial, go) {
  const input = h("input", { type: "text", testid, placeholder, value: initial });
  return h("form", { class: "row", onsubmit: (e) => {
    e.preventDefault();
    go(input.value.trim());
  } }, input, h("button", { type: "submit", testid: testid + "-submit" }, "Look up"));
}

/** presenceRooms fills el with the user's rooms that are presence rooms
 * (the presence endpoint answers 400 for the others); 20 rooms at most. */
async function presenceRooms(u, el) {
  const rooms = [...new Set(u.conns.flatMap((c) => c.rooms || []))].slice(0, 20);
  const found = [];
  await Promise.all(rooms.map(async (room) => {
    try {
      const p = await api("GET", `/v1/rooms/${enc(room)}/presence` + q());
      found.push({ room, present: p.users.includes(u.user) ? "present" : p.next ? "maybe on a later page" : "not listed" });
    } catch {
      /* not a presence room */
    }
  }));
  if (!found.length) return;
  found.sort((a, b) => a.room.localeCompare(b.room));
  el.className = "";
  el.replaceChildren(...found.map((f, i) => h("span", { testid: "user-presence-room", "data-room": f.room }, (i ? ", " : "") + `${f.room} (${f.present})`)));
}

function users(main, arg) {
  const out = h("div");
  const look = async (user) => {
    if (!user) return;
    if (route().arg !== user) window.history.replaceState(null, "", "#/users/" + enc(user));
    out.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      const [u, box] = await Promise.all([api("GET", `/v1/users/${enc(user)}` + q()), api("GET", `/v1/users/${enc(user)}/inbox` + q()).catch(() => null)]);
      const rows = u.conns.map((c) =>
        h("tr", { testid: "user-conn-row", "data-conn": c.id },
          h("td", {}, c.id), h("td", {}, c.node), h("td", {}, c.device || ""), h("td", {}, c.addr),
          h("td", {}, c.since), h("td", {}, (c.rooms || []).join(", ")),
          h("td", {}, readOnly() ? "" : h("button", { class: "danger", testid: "kick-conn", onclick: async (ev) => {
            ev.target.disabled = true;
            try {
              await api("DELETE", `/v1/conns/${enc(c.id)}` + q());
            } catch (e) {
              alert("Kick failed: " + e.message);
            }
            look(user);
          } }, "Kick"))));
      const presence = h("p", { class: "muted", testid: "user-presence" }, "None of the user's rooms is a presence room.");
      presenceRooms(u, presence);
      fill(out,
        h("p", { testid: "user-online", "data-online": String(u.online) }, u.online ? `${u.user} is online with ${u.count ?? u.conns.length} connection(s).` : `${u.user} is offline.`),
        h("table", {}, h("tr", {}, ["Connection", "Node", "Device", "Address", "Since", "Rooms", ""].map((t) => h("th", {}, t))), rows),
        u.next ? h("p", { class: "muted" }, "More connections exist than shown.") : null,
        h("h2", {}, "Inbox"),
        box ? h("p", { testid: "user-inbox", "data-latest": box.latest_seq, "data-delivered": box.delivered_seq, "data-acked": box.acked_seq, "data-waiting": box.waiting },
          `Latest seq ${box.latest_seq}, delivered ${box.delivered_seq}, acked ${box.acked_seq}; ` +
          `${box.waiting}${box.waiting_more ? "+" : ""} stored message${box.waiting === 1 ? "" : "s"} waiting for an ack.`) : h("p", { class: "muted" }, "Inbox unavailable."),
        h("h2", {}, "Presence rooms"),
        presence,
        readOnly() || !u.online ? null : h("p", {}, h("button", { class: "danger", testid: "kick-user", onclick: async () => {
          if (!confirm(`Disconnect every connection of ${user}?`)) return;
          await api("DELETE", `/v1/users/${enc(user)}/conns` + q()).catch((e) => alert(e.message));
          look(user);
        } }, "Kick all connections")),
      );
    } catch (e) {
      out.replaceChildren(h("p", { class: "error" }, e.message));
    }
  };
  main.append(h("h1", {}, "Users"), searchForm("user-search", "user id", arg, look), out);
  if (arg) look(arg);
}

// ---- rooms

function rooms(main, arg) {
  const out = h("div");
  const look = async (room, cursor = "") => {
    if (!room) return;
    out.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      const r = await api("GET", `/v1/rooms/${enc(room)}` + q({ cursor }));
      const userInput = h("input", { type: "text", testid: "room-user", placeholder: "user id" });
      const member = (op) => async () => {
        const u = userInput.value.trim();
        if (!u) return;
        await api("POST", `/v1/rooms/${enc(room)}/${op}`, { app: state.admin ? app : undefined, users: [u] }).catch((e) => alert(e.message));
        look(room);
      };
      out.replaceChildren(
        h("p", { testid: "room-counts" }, `${r.room}: ${r.conns} connection(s) of ${r.users} user(s).`),
        h("table", {}, h("tr", {}, h("th", {}, "Connection"), h("th", {}, "User")),
          r.members.map((m) => h("tr", { testid: "room-member-row" }, h("td", {}, m.conn), h("td", {}, m.user)))),
        h("div", { class: "row" },
          cursor ? h("button", { class: "plain", testid: "room-first", onclick: () => look(room) }, "First page") : null,
          r.next ? h("button", { class: "plain", testid: "room-next", onclick: () => look(room, r.next) }, "Next page") : null),
        readOnly() ? null : h("div", { class: "row" }, userInput,
          h("button", { testid: "room-join", onclick: member("join") }, "Join user"),
          h("button", { class: "danger", testid: "room-remove", onclick: member("leave") }, "Remove user")),
      );
    } catch (e) {
      out.replaceChildren(h("p", { class: "error" }, e.message));
    }
  };
  main.append(h("h1", {}, "Rooms"), searchForm("room-search", "room name", arg, (r) => look(r)), out);
  if (arg) look(arg);
}

// ---- messages

function messages(main, arg) {
  const out = h("div");
  let timer = 0;
  let alive = true;
  cleanup.push(() => {
    alive = false;
    clearTimeout(timer);
  });
  const look = async (id, again = false) => {
    clearTimeout(timer);
    if (!id) return;
    if (!again) out.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      const m = await api("GET", `/v1/messages/${enc(id)}` + q());
      if (!alive) return;
      const n = (k) => m[k] ?? 0;
      out.replaceChildren(
        h("div", { class: "funnel", testid: "message-status", "data-targeted": n("targeted"), "data-delivered": n("delivered"), "data-acked": n("acked"),
          "data-recalled": String(!!m.recalled) },
          ["targeted", "delivered", "acked", "expired", "dropped"].map((k) => h("div", {}, h("b", {}, n(k)), k)),
          h("div", {}, h("b", {}, m.recalled ? "yes" : "no"), "recalled")),
        h("p", { class: "muted" }, `Created ${m.created || "?"}, ttl ${m.ttl ?? "?"} s. Updated ${new Date().toLocaleTimeString()}.`),
        m.users ? h("table", {}, h("tr", {}, ["User", "Seq", "Delivered", "Acked"].map((t) => h("th", {}, t))),
          m.users.map((u) => h("tr", { testid: "message-user-row" }, h("td", {}, u.user), h("td", {}, u.seq ?? ""), h("td", {}, String(!!u.delivered)), h("td", {}, String(!!u.acked))))) : null,
        readOnly() || m.recalled ? null : h("p", {}, h("button", { class: "danger", testid: "recall-message", onclick: async () => {
          if (!confirm(`Recall message ${id}? It is never delivered again and online clients are told.`)) return;
          await api("DELETE", `/v1/messages/${enc(id)}` + q()).catch((e) => alert(e.message));
          look(id);
        } }, "Recall")),
      );
      timer = setTimeout(() => look(id, true), POLL_MS);
    } catch (e) {
      if (alive) out.replaceChildren(h("p", { class: "error", testid: "message-error" }, e.message));
    }
  };
  const recent = h("div", { testid: "recent-messages" }, h("p", { class: "muted" }, "Loading…"));
  main.append(h("h1", {}, "Messages"), searchForm("message-search", "message id", arg, look), out,
    h("h2", {}, "Recent messages"),
    h("p", { class: "muted" }, "The pushes the live nodes accepted lately, newest first: each node keeps its last 200 per app in memory (a restarted node forgets its own). Stored (offline) pushes show their status."),
    recent);
  if (arg) look(arg);
  recentList(recent, () => alive);
}

/** targetsText summarises a recent push's targets. */
function targetsText(t) {
  if (t.all) return "every app";
  if (t.app) return "the whole app";
  const kinds = [["user", t.users], ["conn", t.conns], ["room", t.rooms]].filter(([, n]) => n > 0).map(([k, n]) => `${n} ${k}${n > 1 ? "s" : ""}`);
  const more = t.users + t.conns + t.rooms > 1 ? ", …" : "";
  return kinds.join(", ") + (t.first ? ` (${t.first}${more})` : "");
}

/** funnelCell shows a stored push's status funnel; a live push has none. */
function funnelCell(m, st) {
  if (!m.offline) return h("td", { class: "muted" }, "live only: no status kept");
  if (!st) return h("td", { class: "muted" }, "status unavailable");
  const n = (k) => st[k] ?? 0;
  const extra = ["expired", "dropped"].filter((k) => n(k) > 0).map((k) => ` · ${n(k)} ${k}`).join("") + (st.recalled ? " · recalled" : "");
  return h("td", {}, h("span", { testid: "recent-funnel", "data-targeted": n("targeted"), "data-delivered": n("delivered"), "data-acked": n("acked"), "data-recalled": String(!!st.recalled) },
    `${n("targeted")} targeted → ${n("delivered")} delivered → ${n("acked")} acked${extra}`));
}

/** recentList fills box with the app's recent pushes, newest first, a
 * page at a time, each stored one with its status funnel; the first page
 * refreshes every few seconds. */
function recentList(box, alive) {
  const cursors = []; // the cursors of the pages before this one
  let cursor = "";
  let timer = 0;
  cleanup.push(() => clearTimeout(timer));
  const load = async () => {
    clearTimeout(timer);
    try {
      const r = await api("GET", "/v1/messages" + q({ limit: String(RECENT_PAGE), cursor }));
      const status = await Promise.all(r.messages.map((m) => (m.offline ? api("GET", `/v1/messages/${enc(m.id)}` + q()).catch(() => null) : null)));
      if (!alive()) return;
      const older = () => {
        cursors.push(cursor);
        cursor = r.next;
        load();
      };
      const newer = () => {
        cursor = cursors.pop() ?? "";
        load();
      };
      fill(box,
        r.messages.length ? h("table", {},
          h("tr", {}, ["Accepted", "Message", "Targets", "Node", "Status"].map((t) => h("th", {}, t))),
          r.messages.map((m, i) => h("tr", { testid: "recent-row", "data-id": m.id, "data-offline": String(m.offline) },
            h("td", {}, new Date(m.at).toLocaleString()),
            h("td", {}, h("a", { href: "#/messages/" + enc(m.id), testid: "recent-link" }, m.id)),
            h("td", {}, targetsText(m.to)), h("td", {}, m.node), funnelCell(m, status[i])))) :
          h("p", { testid: "recent-empty" }, "No push accepted lately."),
        h("div", { class: "row" },
          cursor ? h("button", { class: "plain", testid: "recent-prev", onclick: newer }, "Newer") : null,
          r.next ? h("button", { class: "plain", testid: "recent-next", onclick: older }, "Older") : null),
        r.partial ? h("p", { class: "muted" }, "Partial: nodes " + r.missing.join(", ") + " did not answer.") : null);
    } catch (e) {
      if (alive()) box.replaceChildren(h("p", { class: "error" }, e.message));
    }
    if (alive() && !cursor) timer = setTimeout(load, 5000);
  };
  load();
}

// ---- push console

function pushPage(main) {
  main.append(h("h1", {}, "Push console"));
  if (readOnly()) {
    main.append(h("p", { class: "muted", testid: "read-only" }, "Pushing needs an admin session."));
    return;
  }
  const targets = h("textarea", { rows: 2, testid: "push-targets", value: '{"users":["alice"]}' });
  const data = h("textarea", { rows: 5, testid: "push-data", value: '{"text":"hello"}' });
  const ttl = h("input", { type: "number", testid: "push-ttl", placeholder: "app default", min: 1 });
  const id = h("input", { type: "text", testid: "push-id", placeholder: "optional id (idempotency key)" });
  const offline = h("input", { type: "checkbox", testid: "push-offline" });
  const result = h("div");
  const submit = async (ev) => {
    ev.preventDefault();
    result.replaceChildren();
    const body = { app: app || undefined };
    for (const [name, el, key] of [["targets", targets, "to"], ["data", data, "data"]]) {
      try {
        body[key] = JSON.parse(el.value);
      } catch (e) {
        result.append(h("p", { class: "error", testid: "push-error" }, `The ${name} are not valid JSON: ${e.message}`));
        return; // no request
      }
    }
    if (ttl.value) body.ttl = Number(ttl.value);
    if (id.value.trim()) body.id = id.value.trim();
    body.offline = offline.checked;
    try {
      const r = await api("POST", "/v1/push", body);
      result.append(h("p", { class: "ok", testid: "push-result", "data-id": r.id }, "Accepted: ",
        h("a", { href: "#/messages/" + enc(r.id), testid: "push-status-link" }, r.id)));
    } catch (e) {
      result.append(h("p", { class: "error", testid: "push-error" }, `${e.code}: ${e.message}`));
    }
  };
  main.append(
    h("form", { class: "form", onsubmit: submit },
      h("label", {}, "Targets (the \"to\" object of POST /v1/push)", targets),
      h("label", {}, "Data (any JSON value)", data),
      h("div", { class: "row" }, h("label", {}, "TTL (s) ", ttl), h("label", {}, "Id ", id), h("label", {}, offline, " store offline (users only)")),
      h("div", {}, h("button", { type: "submit", testid: "push-submit" }, "Push"))),
    result);
}

// ---- live tail

function tail(main) {
  main.append(h("h1", {}, "Live tail"));
  if (readOnly()) {
    main.append(h("p", { class: "muted", testid: "read-only" }, "The live tail needs an admin session."));
    return;
  }
  const target = h("input", { type: "text", testid: "tail-target", placeholder: "room:<name> or user:<id>" });
  const status = h("p", { class: "muted", testid: "tail-status" }, "Stopped.");
  const rows = h("table", { class: "tail" }, h("tr", {}, h("th", {}, "Time"), h("th", {}, "Kind"), h("th", {}, "Message")));
  let ctl = null;
  const stop = () => {
    ctl?.abort();
    ctl = null;
  };
  cleanup.push(stop);
  const run = async (ev) => {
    ev.preventDefault();
    stop();
    const c = (ctl = new AbortController());
    status.textContent = "Connecting…";
    try {
      const r = await fetch("/v1/admin/tail" + q({ target: target.value.trim() }), { headers: { [CSRF_HEADER]: state.csrf || "" }, signal: c.signal, credentials: "same-origin" });
      if (!r.ok) {
        const e = await r.json().catch(() => ({}));
        status.textContent = "Refused: " + (e.error?.message || r.status);
        return;
      }
      status.textContent = "Watching " + target.value.trim() + " (at most 20 pushes a second are shown).";
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const chunk = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (!chunk.startsWith("data: ")) continue;
          const e = JSON.parse(chunk.slice(6));
          rows.insertBefore(h("tr", { testid: "tail-row", "data-kind": e.kind },
            h("td", {}, new Date().toLocaleTimeString()), h("td", {}, e.kind + (e.skipped ? ` (+${e.skipped} skipped)` : "")),
            h("td", {}, h("pre", {}, e.msg ? JSON.stringify(e.msg) : ""))), rows.children[1] || null);
          while (rows.children.length > 201) rows.lastChild.remove();
        }
      }
      status.textContent = "The stream ended.";
    } catch (e) {
      if (e.name !== "AbortError") status.textContent = "Stopped: " + e.message;
    }
  };
  main.append(
    h("form", { class: "row", onsubmit: run }, target, h("button", { type: "submit", testid: "tail-start" }, "Start"),
      h("button", { type: "button", class: "plain", testid: "tail-stop", onclick: () => { stop(); status.textContent = "Stopped."; } }, "Stop")),
    status, rows);
}

// ---- webhooks

function webhooks(main) {
  main.append(h("h1", {}, "Webhooks"));
  const eps = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const dead = h("div");
  main.append(h("h2", {}, "Endpoints"),
    h("p", { class: "muted" }, "Summed over the live nodes, each counting since it started; pending is what the outbox holds for the endpoint now. Refreshed every 5 s."),
    eps, h("h2", {}, "Dead letters"), dead);
  let timer = 0;
  let alive = true;
  cleanup.push(() => {
    alive = false;
    clearTimeout(timer);
  });
  const replay = (ids) => async (ev) => {
    if (!confirm(ids ? `Send event ${ids[0]} to its endpoint again?` : "Send every dead letter of this app to its endpoint again?")) return;
    ev.target.disabled = true;
    try {
      await api("POST", "/v1/webhooks/dead/replay", { app: app || undefined, ids });
    } catch (e) {
      alert("Replay failed: " + e.message);
    }
    load();
  };
  const load = async () => {
    clearTimeout(timer);
    try {
      const [e, d] = await Promise.all([api("GET", "/v1/webhooks" + q()), api("GET", "/v1/webhooks/dead" + q())]);
      if (!alive) return;
      const list = e.endpoints || [];
      eps.replaceChildren(list.length ? h("table", {},
        h("tr", {}, ["Endpoint", "Delivered", "Retried", "Dead", "Pending", "State"].map((t) => h("th", {}, t))),
        list.map((p) => h("tr", { testid: "webhook-endpoint-row", "data-id": p.id, "data-delivered": p.delivered, "data-retried": p.retried, "data-dead": p.dead, "data-pending": p.pending },
          h("td", {}, p.url), h("td", {}, p.delivered), h("td", {}, p.retried), h("td", {}, p.dead), h("td", {}, p.pending),
          h("td", {}, p.disabled ? "disabled (410)" : "active")))) : h("p", { testid: "webhooks-none" }, "This app has no webhook endpoint."));
      const evs = d.events || [];
      fill(dead, evs.length ? h("table", { class: "dead" },
        h("tr", {}, ["Failed", "Type", "Endpoint", "Last error", "Event", ""].map((t) => h("th", {}, t))),
        evs.map((v) => h("tr", { testid: "webhook-dead-row", "data-id": v.id },
          h("td", {}, v.failed ? new Date(v.failed).toLocaleString() : ""), h("td", {}, v.type), h("td", {}, v.endpoint), h("td", {}, v.error),
          h("td", {}, h("pre", {}, JSON.stringify(v.event))),
          h("td", {}, readOnly() ? "" : h("button", { class: "plain", testid: "webhook-replay", onclick: replay([v.id]) }, "Replay"))))) :
        h("p", { testid: "webhooks-empty" }, "No dead letters."),
        d.next ? h("p", { class: "muted" }, "More dead letters exist than shown.") : null,
        evs.length && !readOnly() ? h("p", {}, h("button", { testid: "webhook-replay-all", onclick: replay(undefined) }, "Replay all")) : null);
    } catch (err) {
      if (alive) eps.replaceChildren(h("p", { class: "error" }, err.message));
    }
    if (alive) timer = setTimeout(load, 5000);
  };
  load();
}

const PAGE_RENDER = { overview, users, rooms, messages, push: pushPage, tail, webhooks };

// ---- boot

(async () => {
  try {
    start(await api("GET", "/admin/session"));
  } catch (e) {
    if (!state) showLogin(e.status === 401 ? "" : "The server did not answer: " + e.message);
  }
})();
