#!/usr/bin/env bash
# Runs every check and test of the project: vet, formatting, the race-enabled
# test suite (embedded NATS servers, a throwaway PostgreSQL where a test needs
# one, the JavaScript client of clients/js under Node.js), a bounded run of
# each fuzz target, a smoke run of the benchmarks and a short chaos run
# (leader kills against three real nats-server processes).
# Set FUZZTIME (default 100000x: executions per target) to fuzz longer; a
# count, not a duration, because Go 1.26's fuzzing coordinator can fail a
# target with "context deadline exceeded" when a duration ends while a
# starved worker is mid-call (go.dev/issue/75804, fixed in Go 1.27).
set -euo pipefail
cd "$(dirname "$0")/.."

# PostgreSQL backs the bridge's PostgreSQL sink tests, which start throwaway
# servers with initdb and pg_ctl. Install Debian's package when it is missing
# and we can; otherwise those tests skip outside CI and fail in CI.
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "== installing PostgreSQL (Debian package postgresql)"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
	else
		echo "PostgreSQL is not installed: its tests will skip (install the postgresql package to run them)" >&2
	fi
fi

# Node.js and npm run the JavaScript client (clients/js), whose tests check
# that a client following PROTOCOL.md and the Go library read each other's
# events. .ci/run installs them; here a missing one fails in CI and skips
# those tests otherwise.
missing=""
command -v node >/dev/null 2>&1 || missing="node"
command -v npm >/dev/null 2>&1 || missing="${missing:+$missing and }npm"
if [ -n "$missing" ]; then
	if [ -n "${CI:-}" ]; then
		echo "FAIL: $missing not installed: the JavaScript client's tests (clients/js) need Node.js 18 or later and npm (Debian packages nodejs and npm)" >&2
		exit 1
	fi
	echo "$missing not installed: the JavaScript client's tests (clients/js) will skip (install Node.js 18 or later and npm to run them)" >&2
else
	echo "== npm ci (clients/js, Node.js $(node --version))"
	(cd clients/js && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "== go mod tidy"
# Direct dependencies must not be marked // indirect, and nothing unused
# may linger: go.mod and go.sum are what 'go mod tidy' makes of the code.
if ! tidy=$(go mod tidy -diff 2>&1); then
	echo "go.mod or go.sum is not tidy: run 'go mod tidy' and commit the result. What it would change:" >&2
	echo "$tidy" >&2
	exit 1
fi

echo "== go vet"
go vet ./...

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "not gofmt-ed:" >&2
	echo "$unformatted" >&2
	exit 1
fi

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...

echo "== fuzz (${FUZZTIME:-100000x} per target)"
for pkg in ./subjects/ ./sessionlog/; do
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz'); do
		go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "${FUZZTIME:-100000x}"
	done
done

echo "== benchmark smoke runs"
go test ./jetstream/ -run '^$' -bench . -benchtime 3x -timeout 10m >/dev/null
go run ./cmd/bench --smoke >/dev/null

# About 10 leader kills and a whole-cluster kill in a minute and a half
# against three nats-server processes; fails on any checker violation, never
# on latency. Pauses (SIGSTOP/SIGCONT) are left to the long run: a paused
# stream leader that resumes answers a read or two from its stale store
# before it learns of the new term (a server behaviour the library detects
# when a replica answers its direct get; see README, "Fault tolerance"). Exit 4 means no nats-server could be found or installed:
# fatal in CI, skipped elsewhere (like the PostgreSQL tests).
echo "== chaos short run"
rc=0
go run ./cmd/chaos --kills 10 --pauses 0 --duration 60s || rc=$?
if [ "$rc" = 4 ]; then
	if [ -n "${CI:-}" ]; then
		echo "nats-server is not available and CI is set: failing (go install github.com/nats-io/nats-server/v2@v2.15.2)" >&2
		exit 4
	fi
	echo "nats-server is not available: the chaos run was skipped (go install github.com/nats-io/nats-server/v2@v2.15.2)" >&2
elif [ "$rc" != 0 ]; then
	echo "the chaos run failed (exit $rc); rerun it with the seed printed above" >&2
	exit "$rc"
fi

echo "all checks passed"
