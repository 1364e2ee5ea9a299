package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jetsession/jetsession/internal/acctest"
	"github.com/jetsession/jetsession/provision"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// usage is what the process holds at one moment, after collecting.
type usage struct {
	heap       uint64 // bytes in use by the Go heap
	rss        uint64 // resident set size
	goroutines int
}

func measure() usage {
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return usage{heap: ms.HeapInuse, rss: rss(), goroutines: runtime.NumGoroutine()}
}

// rss reads the resident set size from /proc (0 where there is none).
func rss() uint64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

// perTenant formats the growth from a to b divided by n.
func perTenant(a, b usage, n int) (heapKiB, rssKiB, goroutines float64) {
	d := func(x, y uint64) float64 { return (float64(y) - float64(x)) / float64(n) / 1024 }
	return d(a.heap, b.heap), d(a.rss, b.rss), float64(b.goroutines-a.goroutines) / float64(n)
}

// quantiles returns the p50 and p99 of ds.
func quantiles(ds []time.Duration) (p50, p99 time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(f float64) time.Duration { return s[int(f*float64(len(s)-1))] }
	return q(0.5), q(0.99)
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f us", float64(d.Nanoseconds())/1e3) }

// accountServer runs tenant-accounts.conf in a fresh folder with room for
// n tenants of storage bytes each, and returns a provisioner.
func accountServer(n int, storage int64) (*acctest.Env, *provision.Provisioner, func(), error) {
	dir, err := os.MkdirTemp("", "acctbench-")
	if err != nil {
		return nil, nil, nil, err
	}
	env, stop, err := acctest.Launch(dir, acctest.Options{Edit: func(o *server.Options) {
		// Account storage limits are reservations on one server.
		o.JetStreamMaxStore = max(o.JetStreamMaxStore, int64(n+1)*storage+1<<30)
		o.MaxConn = 1 << 20
	}})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, nil, err
	}
	cleanup := func() { stop(); os.RemoveAll(dir) }
	keys, err := provision.LoadKeys(env.Dir)
	if err != nil {
		cleanup()
		return nil, nil, nil, err
	}
	connect := func(creds string) (*nats.Conn, error) {
		return nats.Connect(env.URL, nats.UserCredentials(filepath.Join(env.Dir, provision.CredsDir, creds)),
			nats.CustomInboxPrefix(provision.ProvisionerInbox), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	}
	sys, err := connect(provision.ProvisionerSystemCreds)
	if err != nil {
		cleanup()
		return nil, nil, nil, err
	}
	ops, err := connect(provision.ProvisionerCreds)
	if err != nil {
		sys.Close()
		cleanup()
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := provision.New(ctx, provision.Config{System: sys, Ops: ops, Keys: keys, Timeout: 30 * time.Second,
		DefaultLimits: benchLimits(storage)})
	if err != nil {
		sys.Close()
		ops.Close()
		cleanup()
		return nil, nil, nil, err
	}
	return env, p, func() { sys.Close(); ops.Close(); cleanup() }, nil
}

func benchLimits(storage int64) provision.Limits {
	l := provision.DefaultLimits()
	l.StorageBytes = storage
	return l
}
