// Package heraldjs holds the browser build of the TypeScript client SDK
// (@heraldpush/client), so that herald serve can hand it to pages at
// GET /v1/herald.js without Node on the server or build machine.
package heraldjs

import _ "embed"

// Script is dist/herald.js: the minified IIFE build whose global Herald is
// the client class. It is rebuilt from src/ with pinned tools and checked in
// CI (scripts/test.sh), never edited by hand.
//
//go:embed dist/herald.js
var Script []byte
