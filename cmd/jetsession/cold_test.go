package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestArchiveToTheColdTierAndLoadThrough(t *testing.T) {
	e := newServer(t)
	for i := range 5 {
		ok(t, e, "append", "acme", "t1", "--type", "x", "--data", fmt.Sprint(i), "--create")
	}
	for _, cold := range []string{"nats", "dir:" + filepath.Join(t.TempDir(), "cold")} {
		t.Run(strings.SplitN(cold, ":", 2)[0], func(t *testing.T) {
			thread := "t-" + strings.SplitN(cold, ":", 2)[0]
			for i := range 5 {
				ok(t, e, "append", "acme", thread, "--type", "x", "--data", fmt.Sprint(i), "--create")
			}
			recs := jsonLines(t, ok(t, e, "load", "acme", thread, "--json"))
			require.Len(t, recs, 5)
			third := uint64(recs[2]["ordinal"].(float64))
			out := ok(t, e, "archive", "acme", thread, "--before", fmt.Sprint(third), "--yes", "--cold", cold)
			assert.Equal(t, fmt.Sprintf("archived 3 events of acme/%s up to ordinal %d\n", thread, third), out)

			live := jsonLines(t, ok(t, e, "load", "acme", thread, "--json"))
			require.Len(t, live, 2, "the hot log holds what was not archived")
			through := jsonLines(t, ok(t, e, "load", "acme", thread, "--json", "--archived", "--cold", cold))
			require.Equal(t, recs, through, "a read through shows every event once, in order")
			after := jsonLines(t, ok(t, e, "load", "acme", thread, "--json", "--archived", "--cold", cold, "--since", fmt.Sprint(recs[1]["ordinal"])))
			require.Equal(t, recs[2:], after)

			ok(t, e, "delete-thread", "acme", thread, "--yes", "--cold", cold)
			r := cli(t, e, "", "load", "acme", thread, "--archived", "--cold", cold)
			require.Equal(t, 0, r.code, r.stderr)
			assert.Empty(t, strings.TrimSpace(r.stdout), "deleting the thread removed its archived events")
		})
	}
	// Without --cold, --archived reads the segment streams in NATS.
	recs := jsonLines(t, ok(t, e, "load", "acme", "t1", "--json"))
	ok(t, e, "archive", "acme", "t1", "--before", fmt.Sprint(recs[1]["ordinal"]), "--yes", "--cold", "nats")
	assert.Equal(t, recs, jsonLines(t, ok(t, e, "load", "acme", "t1", "--json", "--archived")))

	r := cli(t, e, "", "load", "acme", "t1", "--archived", "--last", "2")
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.stderr, "--archived reads the thread from its start")
	r = cli(t, e, "", "load", "acme", "t1", "--cold", "s3://x")
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.stderr, `--cold "s3://x": use nats`)
}
