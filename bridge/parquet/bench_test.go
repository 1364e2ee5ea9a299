package parquet_test

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/jetsession/jetsession/bridge"
	pqsink "github.com/jetsession/jetsession/bridge/parquet"
)

// BenchmarkWrite measures Write and Flush of 1,000,000 rows with 512-byte
// JSON payloads over 100 tenants, in batches of 5,000 as the bridge hands
// them over, with the default limits. It reports rows per second counting
// only the time spent in Write and Close (not making the rows), the peak of
// HeapInuse sampled while writing, and the bytes on disk per row.
//
//	go test -run '^$' -bench BenchmarkWrite -benchtime 1x ./bridge/parquet/
func BenchmarkWrite(b *testing.B) {
	const (
		total   = 1_000_000
		tenants = 100
		batch   = 5_000
		size    = 512
	)
	names := make([]string, tenants)
	for i := range names {
		names[i] = fmt.Sprintf("tenant-%03d", i)
	}
	// A pool of distinct payloads, half repeated text and half random
	// letters, so that compression is neither trivial nor useless.
	rng := rand.New(rand.NewPCG(1, 2))
	// A prime count, so that every tenant cycles through all of them.
	payloads := make([][]byte, 4099)
	for i := range payloads {
		p := fmt.Appendf(nil, `{"role":"assistant","seq":%d,"text":"`, i)
		for len(p) < size-2 {
			if len(p)%64 < 32 {
				p = append(p, "the quick brown fox jumps over "[len(p)%31])
			} else {
				p = append(p, byte('a'+rng.IntN(26)))
			}
		}
		payloads[i] = append(p, '"', '}')
	}
	base := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)

	var peak uint64
	var written int64
	var elapsed time.Duration
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		s, err := pqsink.New(dir)
		if err != nil {
			b.Fatal(err)
		}
		rows := make([]bridge.Row, batch)
		ordinals := make([]uint64, tenants)
		runtime.GC()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			var ms runtime.MemStats
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		})
		b.StartTimer()

		for n := 0; n < total; n += batch {
			pos := bridge.Positions{}
			for i := range rows {
				t := (n + i) % tenants
				ordinals[t]++
				rows[i] = bridge.Row{
					Tenant:  names[t],
					Thread:  fmt.Sprintf("thread-%d", ordinals[t]%50),
					Ordinal: ordinals[t],
					ID:      fmt.Sprintf("ev-%d-%d", t, ordinals[t]),
					Type:    "message",
					Time:    base.Add(time.Duration(n+i) * time.Millisecond),
					Data:    payloads[(n+i)%len(payloads)],
					Meta:    map[string]string{"source": "bench"},
				}
				pos[names[t]] = ordinals[t]
			}
			start := time.Now()
			if err := s.Write(ctx, rows, pos); err != nil {
				b.Fatal(err)
			}
			elapsed += time.Since(start)
		}
		start := time.Now()
		if err := s.Close(ctx); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
		b.StopTimer()
		close(stop)
		wg.Wait()
		filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if fi, err := d.Info(); err == nil {
					written += fi.Size()
				}
			}
			return nil
		})
		b.StartTimer()
	}
	b.ReportMetric(float64(total*b.N)/elapsed.Seconds(), "rows/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(written)/float64(total*b.N), "disk-B/row")
}
