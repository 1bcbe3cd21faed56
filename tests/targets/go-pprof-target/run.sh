#!/usr/bin/env bash
# Builds Cinder's Go scrape target (standard library only, no network) and runs it:
#   run.sh [ADDR] [flags…]     ADDR defaults to 127.0.0.1:6060; 127.0.0.1:0 picks a port
# The first stdout line is `go-pprof-target listening on http://ADDR pid=PID`, and the
# script execs the program, so its PID is the server's. BUILD_ONLY=1 only builds and
# prints the binary's path. The build goes to $GO_PPROF_TARGET_BUILD_DIR (default
# ${TMPDIR:-/tmp}/cinder-go-pprof-target), never into this folder.
set -euo pipefail
addr="${1:-127.0.0.1:6060}"
[ "$#" -gt 0 ] && shift
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${GO_PPROF_TARGET_BUILD_DIR:-${TMPDIR:-/tmp}/cinder-go-pprof-target}"
command -v go >/dev/null || { echo "run.sh: go is missing (apt-get install golang-go)" >&2; exit 127; }
mkdir -p "$out"
export GOPROXY=off GOFLAGS=-mod=mod GOTOOLCHAIN=local GOCACHE="${GOCACHE:-$out/cache}"
(cd "$here" && go build -o "$out/go-pprof-target" .)
if [ "${BUILD_ONLY:-0}" = 1 ]; then echo "$out/go-pprof-target"; exit 0; fi
exec "$out/go-pprof-target" -addr "$addr" "$@"
