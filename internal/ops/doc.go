// Package ops runs the server API's operations on connections, rooms and
// nodes — room membership, room and user queries, kicks, stats, the node
// list and placement — for every transport (HTTP in httpapi, gRPC in
// grpcapi). Authentication and app resolution stay in the transports: ops
// takes the app a call acts on. Errors are *push.Error values, so every
// transport maps them the same way. Pushes, message status and recall stay
// on the push service.
//
// Ops holds no state of its own beyond its dependencies; its methods are
// safe for concurrent use.
package ops
