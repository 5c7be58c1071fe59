// Package bench is Herald's load generator (`herald bench`). A coordinator
// process spreads client connections over worker processes (each a copy of
// the herald binary, each dialing from its own 127.0.0.x source address, so
// the per-process open-file limit and the ephemeral port range are never
// the bottleneck), drives pushes through the server API, and reads the
// server's RSS and CPU time from /proc/<pid>. Workers count every message
// they receive, detect loss, duplicates and reordering, and record
// push-to-receipt latency in a histogram the coordinator merges. The
// clients may be spread over several nodes of a cluster (Options.Connect),
// whose processes' CPU and RSS are then summed.
//
// The coordinator owns its workers: it starts them, talks to them over
// their standard input and output (one JSON line per command and answer),
// and stops them when the scenario ends.
package bench
