// Package auth owns Herald's client-token handling: it verifies the JWTs that
// WebSocket clients present (each app, or tenant, has its own pinned signing
// algorithm and key) and mints HS256 tokens for tools and tests. It turns a
// token into verified [Claims] and answers room-permission questions with
// [Claims.MayJoin]; it must not do any I/O (no network, files or key
// fetching, no logging), so keys arrive as bytes through [NewKeyring]. A
// [Keyring] is immutable once built and is safe for concurrent use by any
// number of goroutines.
package auth
