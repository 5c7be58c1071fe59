#!/usr/bin/env bash
# Runs every test: Go (with -race), the JS SDK's Node tests and its browser
# tests in headless Chromium. On a fresh Debian machine it installs what is
# missing first (Chromium from Debian, the SDK's pinned npm packages).
# Fails on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== tools"
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
command -v node >/dev/null || { echo "node (>= 20) is required"; exit 1; }
# Centrifugo v6.9.1, the server internal/bench's TestCentrifugoDriver drives
# (herald bench --protocol centrifugo): built once from the Go module proxy
# into a cache outside the tree, then reused while its build info says v6.9.1.
tools="$HOME/.cache/herald-tools/bin"
if ! go version -m "$tools/centrifugo" 2>/dev/null | grep -E '^[[:space:]]+mod[[:space:]]+github.com/centrifugal/centrifugo/v6[[:space:]]+v6\.9\.1[[:space:]]' >/dev/null; then
  echo "installing Centrifugo v6.9.1 into $tools"
  GOBIN="$tools" go install github.com/centrifugal/centrifugo/v6@v6.9.1
fi
export HERALD_CENTRIFUGO="$tools/centrifugo"
(cd sdk/js && npm ci --no-audit --no-fund --loglevel=error)

echo "== sdk/js: committed builds are current, types check"
(cd sdk/js && npm run --silent build)
if ! git diff --exit-code --stat -- sdk/js/dist || [ -n "$(git status --porcelain -- sdk/js/dist)" ]; then
  echo "sdk/js/dist differs from a rebuild of sdk/js/src: run 'npm run build' in sdk/js and commit dist/"
  git status --porcelain -- sdk/js/dist; exit 1
fi
(cd sdk/js && npx --no-install tsc --noEmit -p .)

echo "== go test"
# cmd/herald's process tests pick free ports for clusters of real herald
# processes and reuse them across restarts: run them after the other
# packages, whose tests would otherwise grab such a port in between.
go test -race -count=1 $(go list ./... | grep -v '/cmd/herald$')
go test -race -count=1 ./cmd/herald

echo "== sdk/js tests"
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/herald" ./cmd/herald
export HERALD_BIN="$bin/herald"
(cd sdk/js && node --test test/*.test.mjs test/browser/*.test.mjs test/sse/*.test.mjs test/admin/*.test.mjs)
# pusher-js leaves an internal strategy timer running after a refused
# connection (up to 30 s): --test-force-exit ends the run once every test
# has finished, instead of waiting for it.
(cd sdk/js && node --test --test-force-exit test/pusher/*.test.mjs)
