// Package hub is the node-local registry of live connections: by id, by
// user (one user, many connections) and by room. It owns fan-out: a send
// resolves the recipients under a shard's read lock and hands the shared,
// already encoded frame to each connection's Sender, which only enqueues.
// The hub does no network I/O and never blocks on a connection.
//
// Concurrency: the hub is split into shards by hash. Connection ids and
// their room lists live in the shard of the connection id, user indexes in
// the shard of (app, user), room member sets in the shard of (app, room).
// Each shard's mutex guards only that shard's maps, and no code path holds
// two shard locks at once. A membership change (Join, Leave, Remove) holds
// the connection's own member mutex across the two shards it touches, so
// the lock order is Conn.member, then one shard at a time. Senders are called with a shard read lock held,
// so a Sender must never call back into the Hub.
package hub
