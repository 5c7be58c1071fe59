// Pusher presence across a real 3-node cluster (three `herald serve`
// processes clustering their embedded NATS servers): pusher-js clients of
// one user on two nodes make one member_added; a SIGKILLed node's members
// leave — exactly those it held alone — after its lease runs out; the
// HTTP API answers for the whole cluster from any node.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { client, connected, events, freePort, pusherNode, sdk, subscribe, until } from "./kit.mjs";

let nodes = [];
const clients = [];
before(async () => {
  // A free port may be taken by another process before its node binds it:
  // then the cluster is started again on new ports.
  for (let attempt = 1; ; attempt++) {
    const routes = await Promise.all([0, 1, 2].map(() => freePort()));
    nodes = routes.map((_, i) => {
      const peers = routes.filter((_, j) => j !== i).map((p) => "nats://127.0.0.1:" + p).join(",");
      return pusherNode(["--node-id", "pnode" + (i + 1), "--cluster-name", "pusher-test",
        "--cluster-listen", "127.0.0.1:" + routes[i], "--cluster-peers", peers]);
    });
    try {
      await Promise.all(nodes.map((n) => n.start())); // together: each waits for the others' JetStream
      return;
    } catch (e) {
      await Promise.all(nodes.map((n) => n.close()));
      if (attempt === 3) throw e;
    }
  }
});
after(async () => {
  for (const c of clients) c.disconnect();
  await Promise.all(nodes.map((n) => n.close()));
});

function open(node, member) {
  const p = client(node.addr, { member });
  clients.push(p);
  return p;
}

const ids = (list) => list.map((m) => m.id);

test("any node answers for the cluster: channel lists, sendToUser and terminate_connections reach clients on other nodes", { timeout: 120000 }, async () => {
  const api1 = sdk(nodes[0].addr);
  const onThree = open(nodes[2]);
  const signed = client(nodes[2].addr, { user: { id: "ivy" } });
  clients.push(signed);
  await Promise.all([connected(onThree), connected(signed)]);
  await subscribe(onThree, "far-news");
  const got = [];
  signed.user.bind("hello", (d) => got.push(d));
  signed.signin();
  await until(() => signed.user.serverToUserChannel?.subscribed, "ivy signed in on node 3");
  await until(async () => (await (await api1.get({ path: "/channels", params: { filter_by_prefix: "far-" } })).json()).channels["far-news"], "node 1 lists node 3's channel", 30000);
  await until(async () => {
    await api1.sendToUser("ivy", "hello", { from: 1 });
    return got.length > 0;
  }, "sendToUser through node 1 reaching node 3", 30000);
  await api1.terminateUserConnections("ivy");
  await until(() => signed.connection.state === "disconnected", "ivy's connection on node 3 terminated");
  assert.equal(onThree.connection.state, "connected");
});

test("one user on two nodes: one member_added; SIGKILL of a node removes exactly the members it held alone", { timeout: 120000 }, async () => {
  const name = "presence-cluster";
  const api3 = sdk(nodes[2].addr);
  // The cluster delivers across nodes before the test starts.
  const probe = open(nodes[0]);
  await connected(probe);
  const pc = await subscribe(probe, "probe");
  const pings = events(pc, "ping");
  await until(async () => {
    await api3.trigger("probe", "ping", {});
    return pings.length > 0;
  }, "an event from node 3 reaching node 1", 60000);

  const obs = open(nodes[2], { user_id: "observer" });
  await connected(obs);
  const co = await subscribe(obs, name);
  const added = events(co, "pusher:member_added");
  const removed = events(co, "pusher:member_removed");

  const u1a = open(nodes[0], { user_id: "u1", user_info: { on: 1 } });
  const u1b = open(nodes[1], { user_id: "u1", user_info: { on: 2 } });
  const u3 = open(nodes[1], { user_id: "u3" });
  await Promise.all([u1a, u1b, u3].map(connected));
  await subscribe(u1a, name);
  await until(() => added.length === 1, "u1's member_added");
  await subscribe(u1b, name);
  await subscribe(u3, name);
  await until(() => added.length === 2, "u3's member_added");
  // Barrier: u2 arrives after both; u1's second connection announced nothing.
  const u2 = open(nodes[0], { user_id: "u2" });
  await connected(u2);
  await subscribe(u2, name);
  await until(() => added.length === 3, "u2's member_added");
  assert.deepEqual(ids(added), ["u1", "u3", "u2"]);
  assert.equal(co.members.count, 4);
  const users = async () => (await (await api3.get({ path: `/channels/${name}/users` })).json()).users.map((u) => u.id);
  assert.deepEqual(await users(), ["observer", "u1", "u2", "u3"]);

  await nodes[1].stop("SIGKILL");
  await until(() => removed.length >= 1, "the dead node's member removed (lease + sweep + offline delay)", 60000);
  assert.deepEqual(ids(removed), ["u3"]);
  await until(async () => !(await users()).includes("u3"), "u3 gone from the users list");
  assert.deepEqual(await users(), ["observer", "u1", "u2"], "u1 stays: it is still on node 1");
  assert.deepEqual(ids(removed), ["u3"], "no member_removed for u1 (node 2 did not hold it alone)");

  // u1's last connection leaves: now it is removed, once.
  u1a.disconnect();
  await until(() => removed.length === 2, "u1's member_removed");
  assert.deepEqual(ids(removed), ["u3", "u1"]);
});
