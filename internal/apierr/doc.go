// Package apierr is the catalogue of the server API's errors: the stable
// codes of the v1 contract, the Error type that carries one, and one row
// per code with its HTTP status, its gRPC (Connect) code and a default
// message. The HTTP and gRPC adapters and the Go SDK map codes through
// this table only, so a code's status cannot differ between them.
//
// It is a leaf: it imports no other Herald package, holds no state beyond
// the constant table, and is safe for concurrent use.
package apierr
