// Package cluster runs the server API's cluster-wide operations on
// connections, rooms and nodes — room membership, room and user queries,
// kicks, stats, the node list and placement, drain — for every transport
// (HTTP in httpapi, gRPC in grpcapi): each node runs them on its own
// connections, and the node taking a call asks the others over the
// engine's control requests. Authentication and app resolution stay in
// the transports: Ops takes the app a call acts on. Errors are *push.Error
// values, so every transport maps them the same way. Pushes, message
// status and recall stay on the push service; the admin overview's views
// (the recent pushes each node remembers, each node's 15 minutes of
// history) are merged here from every node.
//
// Ops holds no state of its own beyond its dependencies; its methods are
// safe for concurrent use.
package cluster
