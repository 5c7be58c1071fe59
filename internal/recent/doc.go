// Package recent keeps, per app, the last pushes this node accepted (their
// ids, times and a summary of their targets) in fixed-size rings in
// memory, for the admin UI's list of recent messages. It is what a node
// saw since it started: nothing is written to the engine, and a restart
// empties it.
//
// Adding is on the push path: it takes one mutex per app for a slot copy
// and allocates nothing once the app's ring exists. Every method is safe
// for concurrent use.
package recent
