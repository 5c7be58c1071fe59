// Package httpapi is the HTTP/JSON adapter of the server API (v1): routing,
// API-key authentication, request decoding and the one JSON error shape.
// It holds no state of its own; every operation calls the push service or
// package cluster. Handlers return errors and one wrapper maps them to a
// status, a body, a log line and a metric.
package httpapi
