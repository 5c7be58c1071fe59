// Package pusher owns the Pusher Channels wire format: decoding client
// frames, encoding server frames (from Herald message objects too), and
// Pusher's signatures (channel auth, signed API requests). It holds no
// state and does no I/O: the gateway serves the WebSocket endpoint and
// package httpapi the HTTP API with it. Its functions are safe for
// concurrent use.
package pusher
