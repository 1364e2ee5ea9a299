#!/usr/bin/env bash
# Runs every check and test of the project: vet, formatting, the race-enabled
# test suite (embedded NATS servers, a throwaway PostgreSQL where a test needs
# one), a bounded run of each fuzz target and a smoke run of the benchmarks.
# Set FUZZTIME (default 10s) to fuzz longer.
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

echo "== fuzz (${FUZZTIME:-10s} per target)"
for target in $(go test -list '^Fuzz' ./subjects/ | grep '^Fuzz'); do
	go test ./subjects/ -run '^$' -fuzz "^${target}\$" -fuzztime "${FUZZTIME:-10s}"
done

echo "== benchmark smoke runs"
go test ./jetstream/ -run '^$' -bench . -benchtime 3x -timeout 10m >/dev/null
go run ./cmd/bench --smoke >/dev/null

echo "all checks passed"
