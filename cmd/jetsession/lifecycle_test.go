package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestThreadsPagesByNameAndByRecentActivity(t *testing.T) {
	e := newServer(t)
	ok(t, e, "append", "acme", "b", "--type", "t", "--create")
	ok(t, e, "append", "acme", "a", "--type", "t")
	ok(t, e, "append", "acme", "c", "--type", "t")
	ok(t, e, "append", "acme", "b", "--type", "newest")

	rows := jsonLines(t, ok(t, e, "threads", "acme", "--json"))
	require.Len(t, rows, 3)
	assert.Equal(t, []any{"b", "c", "a"}, []any{rows[0]["thread"], rows[1]["thread"], rows[2]["thread"]}, "most recently active first")
	assert.Equal(t, "newest", rows[0]["last_type"])

	r := cli(t, e, "", "threads", "acme", "--sort", "name", "--limit", "2")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "continue with --sort name --after b")
	assert.NotContains(t, r.stdout, "\nc ")
	r = cli(t, e, "", "threads", "acme", "--sort", "name", "--after", "b")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "\nc ")
	assert.NotContains(t, r.stdout, "\na ")

	r = cli(t, e, "", "threads", "acme", "--limit", "1", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	first := jsonLines(t, r.stdout)
	require.Len(t, first, 1)
	last := fmt.Sprint(first[0]["last_ordinal"])
	assert.Contains(t, r.stderr, "continue with --before "+last)
	rest := jsonLines(t, ok(t, e, "threads", "acme", "--json", "--before", last))
	require.Len(t, rest, 2)
	assert.Equal(t, "c", rest[0]["thread"])

	for _, args := range [][]string{
		{"threads", "acme", "--sort", "sideways"},
		{"threads", "acme", "--after", "x"},
		{"threads", "acme", "--sort", "name", "--before", "3"},
	} {
		assert.Equal(t, exitUsage, cli(t, e, "", args...).code, "%q", args)
	}
}

func TestLoadLastPrintsTheNewestEvents(t *testing.T) {
	e := newServer(t)
	for i := range 12 {
		args := []string{"append", "acme", "t", "--type", "t", "--data", fmt.Sprintf(`{"n":%d}`, i)}
		if i == 0 {
			args = append(args, "--create")
		}
		ok(t, e, args...)
		ok(t, e, "append", "acme", "other", "--type", "t")
	}
	recs := jsonLines(t, ok(t, e, "load", "acme", "t", "--last", "3", "--json"))
	require.Len(t, recs, 3)
	for i, r := range recs {
		assert.Equal(t, map[string]any{"n": float64(9 + i)}, r["data"])
	}
	assert.Equal(t, exitUsage, cli(t, e, "", "load", "acme", "t", "--last", "3", "--since", "2").code)
	assert.Equal(t, exitUsage, cli(t, e, "", "load", "acme", "t", "--last", "0").code)
}

func TestDeleteThreadAndTenantAskFirstAndSayWhatGoes(t *testing.T) {
	e := newServer(t)
	ok(t, e, "append", "acme", "doomed", "--type", "t", "--create")
	ok(t, e, "append", "acme", "doomed", "--type", "t")
	last := strings.TrimSpace(ok(t, e, "append", "acme", "kept", "--type", "t"))

	// Without a terminal to ask on, --yes is required.
	r := cli(t, e, "", "delete-thread", "acme", "doomed")
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.stderr, "--yes")

	r = cliTerminal(t, e, "n\n", "delete-thread", "acme", "doomed")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "acme/doomed holds 2 live events")
	assert.Contains(t, r.stdout, "nothing deleted")
	r = cliTerminal(t, e, "y\n", "delete-thread", "acme", "doomed")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "deleted acme/doomed and its 2 events")
	assert.Contains(t, ok(t, e, "head", "acme", "doomed"), "count   0")

	// A deleted thread lives again only after every ordinal of the tenant.
	again, err := strconv.ParseUint(strings.TrimSpace(ok(t, e, "append", "acme", "doomed", "--type", "t")), 10, 64)
	require.NoError(t, err)
	lastKept, _ := strconv.ParseUint(last, 10, 64)
	assert.Greater(t, again, lastKept)

	r = cliTerminal(t, e, "y\n", "delete-tenant", "acme")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, `tenant "acme" holds`)
	assert.Contains(t, r.stdout, `deleted tenant "acme"`)
	r = cli(t, e, "", "threads", "acme")
	assert.Equal(t, exitRuntime, r.code)
	assert.Contains(t, r.stderr, `tenant "acme" has no stream`)
	r = cli(t, e, "", "delete-tenant", "acme", "--yes")
	assert.Equal(t, exitRuntime, r.code, "deleting a tenant that has no stream says so")
	assert.Contains(t, r.stderr, "has no stream")

	// Created again, the tenant numbers on after its deleted self.
	next, err := strconv.ParseUint(strings.TrimSpace(ok(t, e, "append", "acme", "t", "--type", "t", "--create")), 10, 64)
	require.NoError(t, err)
	assert.Greater(t, next, again)
}

func TestAppendRetentionOptions(t *testing.T) {
	e := newServer(t)
	assert.Equal(t, exitUsage, cli(t, e, "", "append", "acme", "t", "--type", "t", "--max-age", "720h").code, "--max-age without --create")
	assert.Equal(t, exitUsage, cli(t, e, "", "append", "acme", "t", "--type", "t", "--ttl", "1500ms", "--create").code)
	ok(t, e, "append", "acme", "t", "--type", "t", "--create", "--max-age", "720h", "--ttl", "1h")
	recs := jsonLines(t, ok(t, e, "load", "acme", "t", "--json"))
	require.Len(t, recs, 1)
}
