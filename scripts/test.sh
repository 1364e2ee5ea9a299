#!/usr/bin/env bash
# Runs every check and test of the project: vet, formatting, the race-enabled
# test suite (embedded NATS servers, a throwaway PostgreSQL where a test needs
# one), a bounded run of each fuzz target and a smoke run of the benchmarks.
# Set FUZZTIME (default 10s) to fuzz longer.
set -euo pipefail
cd "$(dirname "$0")/.."

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

echo "== benchmark smoke run"
go test ./jetstream/ -run '^$' -bench . -benchtime 3x -timeout 10m >/dev/null

echo "all checks passed"
