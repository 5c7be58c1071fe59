// Package grpcapi is the gRPC adapter of the server API (v1): the
// herald.v1.HeraldService of api/herald/v1, served with Connect, so gRPC,
// gRPC-Web and Connect clients all work on the node's main listener.
// Like the HTTP adapter it holds no state of its own: pushes, batches,
// message status and recall call the push service, everything else the
// cluster-wide operations (package cluster). API keys are checked by the
// same rules as HTTP (package apikey) before a request message is read;
// handlers return errors of the one catalogue (apierr.Error, also known as
// push.Error) and one interceptor maps them, through the catalogue's
// table, to a gRPC status code with an ErrorInfo detail carrying the
// stable code.
// Every call runs on the goroutine that net/http gives the request; the
// package starts none of its own.
package grpcapi
