// Package history keeps the last 15 minutes of a node's counts for the
// admin overview's graphs: every Interval a Sampler reads the node's
// counts (connections, users, cumulative pushes, deliveries, stored
// messages, acks, and the webhook backlog), for every app and in total,
// and keeps them as points in a fixed-size ring per app. Points fall in
// slots aligned to the wall clock, so that the points of several nodes
// for one slot can be summed (Merge). Nothing is stored: a restart starts
// empty.
//
// The Sampler's goroutine is Run's caller's; its methods are safe for
// concurrent use (one mutex guards the rings).
package history
