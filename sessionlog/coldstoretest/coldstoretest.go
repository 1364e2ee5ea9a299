// Package coldstoretest is the conformance suite every sessionlog.ColdStore
// must pass. A store's test calls Run with a factory:
//
//	func TestConformance(t *testing.T) {
//		coldstoretest.Run(t, func(t *testing.T) sessionlog.ColdStore { return newStore(t) })
//	}
//
// Each rule is a named subtest run on a fresh, empty store from the factory.
package coldstoretest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/stretchr/testify/require"
)

// Factory returns a fresh, empty store for one subtest.
type Factory func(t *testing.T) sessionlog.ColdStore

type rule struct {
	name string
	run  func(t *testing.T, s sessionlog.ColdStore)
}

// Run runs every rule against stores from newStore.
func Run(t *testing.T, newStore Factory) {
	t.Helper()
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) { r.run(t, newStore(t)) })
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func list(t *testing.T, s sessionlog.ColdStore, tenant, prefix string) []string {
	t.Helper()
	var out []string
	for name, err := range s.List(ctxFor(t), tenant, prefix) {
		require.NoError(t, err)
		out = append(out, name)
	}
	return out
}

func put(t *testing.T, s sessionlog.ColdStore, tenant, name string, data []byte) {
	t.Helper()
	require.NoError(t, s.Put(ctxFor(t), tenant, name, data))
}

func get(t *testing.T, s sessionlog.ColdStore, tenant, name string) []byte {
	t.Helper()
	data, err := s.Get(ctxFor(t), tenant, name)
	require.NoError(t, err)
	return data
}

func requireMissing(t *testing.T, s sessionlog.ColdStore, tenant, name string) {
	t.Helper()
	_, err := s.Get(ctxFor(t), tenant, name)
	require.ErrorIs(t, err, sessionlog.ErrNotFound)
}

// segmentLike is a name shaped like the cold tier's, for thread n.
func segmentLike(thread string, first, last int) string {
	return fmt.Sprintf("%s/%020d-%020d-%016x-%016x", thread, first, last, 1, 2)
}

var rules = []rule{
	{"get of a missing object fails with ErrNotFound", func(t *testing.T, s sessionlog.ColdStore) {
		requireMissing(t, s, "acme", "t/1")
		put(t, s, "acme", "t/2", []byte("x"))
		requireMissing(t, s, "acme", "t/1")
	}},
	{"put then get returns the bytes stored", func(t *testing.T, s sessionlog.ColdStore) {
		bin := []byte{0, 1, 2, 0xff, 0, '\n', '\r'}
		put(t, s, "acme", "t/bin", bin)
		require.Equal(t, bin, get(t, s, "acme", "t/bin"))
		size := 4_800_000 // more than one chunk or part
		limited, ok := s.(sessionlog.ObjectLimiter)
		if ok && limited.MaxObjectBytes() > 0 && limited.MaxObjectBytes() < size {
			size = limited.MaxObjectBytes()
			err := s.Put(ctxFor(t), "acme", "t/over", make([]byte, size+1))
			require.Error(t, err, "an object over the store's limit is refused")
			requireMissing(t, s, "acme", "t/over")
		}
		big := bytes.Repeat([]byte("0123456789abcdef"), size/16)
		big[12345] = 0
		put(t, s, "acme", "t/big", big)
		require.True(t, bytes.Equal(big, get(t, s, "acme", "t/big")), "a large object comes back whole")
	}},
	{"put replaces an object", func(t *testing.T, s sessionlog.ColdStore) {
		put(t, s, "acme", "t/1", []byte("first"))
		put(t, s, "acme", "t/1", []byte("second, longer"))
		require.Equal(t, []byte("second, longer"), get(t, s, "acme", "t/1"))
		require.Equal(t, []string{"t/1"}, list(t, s, "acme", ""))
	}},
	{"list yields the names under a prefix in byte order", func(t *testing.T, s sessionlog.ColdStore) {
		names := []string{segmentLike("abc", 10, 20), segmentLike("abc", 2, 9), segmentLike("abc", 100, 100), "abcd/x", "ab/y", "b/z", "abc/-", "abc/0"}
		for i, n := range names {
			put(t, s, "acme", n, []byte{byte(i)})
		}
		want := []string{"abc/-", "abc/0", segmentLike("abc", 2, 9), segmentLike("abc", 10, 20), segmentLike("abc", 100, 100)}
		require.Equal(t, want, list(t, s, "acme", "abc/"))
		all := slices.Clone(names)
		slices.Sort(all)
		require.Equal(t, all, list(t, s, "acme", ""))
		require.Empty(t, list(t, s, "acme", "zz/"))
		require.Equal(t, []string{"ab/y"}, list(t, s, "acme", "ab/"))
	}},
	{"list of an unknown tenant yields nothing", func(t *testing.T, s sessionlog.ColdStore) {
		require.Empty(t, list(t, s, "nobody", ""))
		require.Empty(t, list(t, s, "nobody", "t/"))
	}},
	{"delete removes one object and deleting a missing one is not an error", func(t *testing.T, s sessionlog.ColdStore) {
		put(t, s, "acme", "t/1", []byte("1"))
		put(t, s, "acme", "t/2", []byte("2"))
		require.NoError(t, s.Delete(ctxFor(t), "acme", "t/1"))
		requireMissing(t, s, "acme", "t/1")
		require.Equal(t, []string{"t/2"}, list(t, s, "acme", "t/"))
		require.NoError(t, s.Delete(ctxFor(t), "acme", "t/1"))
		require.NoError(t, s.Delete(ctxFor(t), "nobody", "t/1"))
	}},
	{"delete tenant removes every object of the tenant only", func(t *testing.T, s sessionlog.ColdStore) {
		put(t, s, "acme", "a/1", []byte("1"))
		put(t, s, "acme", "b/2", []byte("2"))
		put(t, s, "globex", "a/1", []byte("g"))
		require.NoError(t, s.DeleteTenant(ctxFor(t), "acme"))
		require.Empty(t, list(t, s, "acme", ""))
		requireMissing(t, s, "acme", "a/1")
		require.Equal(t, []byte("g"), get(t, s, "globex", "a/1"))
		require.NoError(t, s.DeleteTenant(ctxFor(t), "acme"), "deleting again is not an error")
		require.NoError(t, s.DeleteTenant(ctxFor(t), "nobody"))
	}},
	{"a tenant written again after its deletion starts empty", func(t *testing.T, s sessionlog.ColdStore) {
		put(t, s, "acme", "a/1", []byte("old"))
		require.NoError(t, s.DeleteTenant(ctxFor(t), "acme"))
		put(t, s, "acme", "a/2", []byte("new"))
		require.Equal(t, []string{"a/2"}, list(t, s, "acme", ""))
		requireMissing(t, s, "acme", "a/1")
	}},
	{"distinct tenants never share objects", func(t *testing.T, s sessionlog.ColdStore) {
		tenants := []string{"acme", "ACME", "Acme", "a.b", "a_2eb", "a*", ">", "a/b", "a b", "%41", "é", "e\u0301", strings.Repeat("é", 32), strings.Repeat("x", 64)}
		for i, tn := range tenants {
			put(t, s, tn, "t/1", []byte(tn))
			put(t, s, tn, fmt.Sprintf("t/only-%d", i), []byte("x"))
		}
		for i, tn := range tenants {
			require.Equal(t, []byte(tn), get(t, s, tn, "t/1"), "tenant %q", tn)
			require.Equal(t, []string{"t/1", fmt.Sprintf("t/only-%d", i)}, list(t, s, tn, ""), "tenant %q", tn)
		}
		require.NoError(t, s.DeleteTenant(ctxFor(t), "ACME"))
		require.Equal(t, []byte("acme"), get(t, s, "acme", "t/1"))
	}},
	{"names as long as the cold tier makes are kept", func(t *testing.T, s sessionlog.ColdStore) {
		thread := strings.Repeat("0123456789abcdefghijklmnopqrstuv", 13)[:410]
		tenant := strings.Repeat("é", 32)
		a, b := segmentLike(thread, 1, 5), segmentLike(thread, 6, 9)
		put(t, s, tenant, b, []byte("b"))
		put(t, s, tenant, a, []byte("a"))
		require.Equal(t, []string{a, b}, list(t, s, tenant, thread+"/"))
		require.Equal(t, []byte("a"), get(t, s, tenant, a))
		require.NoError(t, s.Delete(ctxFor(t), tenant, a))
		require.Equal(t, []string{b}, list(t, s, tenant, thread+"/"))
	}},
	{"concurrent puts are all kept", func(t *testing.T, s sessionlog.ColdStore) {
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- s.Put(ctxFor(t), "acme", segmentLike("t", i*10+1, i*10+10), []byte{byte(i)})
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		got := list(t, s, "acme", "t/")
		require.Len(t, got, 16)
		require.True(t, slices.IsSorted(got))
	}},
	{"a cancelled context fails and changes nothing", func(t *testing.T, s sessionlog.ColdStore) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		require.Error(t, s.Put(ctx, "acme", "t/1", []byte("x")))
		requireMissing(t, s, "acme", "t/1")
	}},
}
