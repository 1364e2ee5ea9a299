package nats_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/stretchr/testify/require"
)

// BenchmarkAppendSyncInterval measures the latency of appending one
// 512-byte event on single.conf as shipped (the default sync interval) and
// with sync_interval: always (an fsync per write), and reports the median
// and 99th percentile. fsync cost depends on the disk: point
// JETSESSION_BENCH_STORE at a folder on the disk the server would use.
//
//	go test ./deploy/nats -run '^$' -bench AppendSyncInterval -benchtime 2000x
func BenchmarkAppendSyncInterval(b *testing.B) {
	for _, mode := range []struct {
		name   string
		always bool
	}{{"default", false}, {"always", true}} {
		b.Run(mode.name, func(b *testing.B) {
			opts := loadConfig(b, "single.conf")
			opts.SyncAlways = mode.always
			if dir := os.Getenv("JETSESSION_BENCH_STORE"); dir != "" {
				store, err := os.MkdirTemp(dir, "jetsession-bench-")
				require.NoError(b, err)
				b.Cleanup(func() { os.RemoveAll(store) })
				opts.StoreDir = store
			}
			srv := startServer(b, opts)
			ctx := ctxFor(b, time.Hour)
			prov := connect(b, opts, srv.ClientURL(), "provisioner", provisionerInbox)
			require.NoError(b, prov.log(b).EnsureTenant(ctx, "acme"))
			agent := connect(b, opts, srv.ClientURL(), "agent-acme", tenantInbox("acme"))
			log := agent.log(b, jetstream.WithStreamCreation(false))
			key := sessionlog.ThreadKey{Tenant: "acme", Thread: "bench"}
			data := fmt.Appendf(nil, `{"text":%q}`, strings.Repeat("x", 512-len(`{"text":""}`)))
			require.Len(b, data, 512)
			append1 := func() {
				// A fresh slice each time: Append fills in the event ID.
				if _, err := log.Append(ctx, key, []sessionlog.Event{{Type: "user_message", Data: data}}); err != nil {
					b.Fatal(err)
				}
			}
			append1() // warm up: stream lookup, first block
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				start := time.Now()
				append1()
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			us := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
			b.ReportMetric(us(0.5), "p50-us")
			b.ReportMetric(us(0.99), "p99-us")
		})
	}
}
