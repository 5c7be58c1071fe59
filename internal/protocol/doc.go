// Package protocol owns Herald's client wire format: the JSON frames a client
// and the server exchange, the catalogue of close and error codes, and the
// WebSocket framing the gateway reads and writes. It does no I/O: encoders
// return bytes and the Parser consumes byte slices, so every function here is
// safe for concurrent use and the Parser is owned by one connection at a time.
package protocol
