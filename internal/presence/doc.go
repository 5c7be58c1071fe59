// Package presence keeps cluster-wide, per-user presence in JetStream
// key-value buckets and reports each transition exactly once.
//
// Three kinds of scope are tracked: a user of an app (online/offline), a
// room of an app (occupied/vacated) and a user in a presence room
// (join/leave). A node counts its own connections in each scope in memory
// and writes to the bucket only when its count crosses zero, so a second
// tab of a user costs no engine call. The shared entry of a scope names
// the nodes present in it; whoever changes it from no node to one (or
// finalizes its debounced departure) wins a compare-and-swap, and only
// that node reports the change to the Sink.
//
// A node holds a lease that it renews; when another node sees that lease
// make no progress (see Liveness in lease.go), it sweeps the dead node's
// scopes and connection records: its users leave (after the same debounce
// as a disconnect) and its connections are reported closed with code
// 1006. Who is present after a SIGKILL is therefore correct within
// LeaseTTL + SweepEvery + OfflineDelay (10 s + 2.5 s + 5 s by default);
// if the death also stops the lease bucket (its leader is elected anew)
// for E > LeaseTTL/2, within E − LeaseTTL/2 more.
//
// Each node also keeps a copy of every presence room's members, from a
// watch of the bucket, so that a join's member list costs one small engine
// call (the room's last member write, which the copy must have applied)
// instead of a listing (MembersCached).
//
// Concurrency: Tracker's methods may be called from any goroutine and
// never block on the engine; engine work runs on the tracker's own worker
// goroutines (one per shard, so the changes of one scope are applied in
// order), which Start starts and Close stops. Sink methods are called from
// those goroutines and must not block for long.
//
// The package must not know about connections' sockets, frames or
// webhooks: it reports to a Sink and lets the caller decide.
package presence
