package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jetsession/jetsession/bridge"
)

// payload512 returns a JSON object of 512 bytes.
func payload512(i int) []byte {
	head := fmt.Sprintf(`{"i":%d,"kind":"message","text":"`, i)
	tail := `"}`
	return []byte(head + strings.Repeat("x", 512-len(head)-len(tail)) + tail)
}

// BenchmarkWrite writes batches of 5,000 new rows with 512-byte JSON
// payloads and their positions, each batch in one transaction.
func BenchmarkWrite(b *testing.B) {
	const batch = 5000
	s := newSink(b)
	ctx := context.Background()
	start := time.Unix(1700000000, 0)
	rows := make([]bridge.Row, batch)
	var ordinal uint64
	next := func() {
		for i := range rows {
			ordinal++
			rows[i] = bridge.Row{
				Tenant:  fmt.Sprintf("tenant-%d", i%10),
				Thread:  fmt.Sprintf("thread-%d", i%100),
				Ordinal: ordinal,
				ID:      fmt.Sprintf("id-%d", ordinal),
				Type:    "message",
				Time:    start.Add(time.Duration(ordinal) * time.Millisecond),
				Data:    payload512(int(ordinal)),
				Meta:    map[string]string{"source": "bench"},
			}
		}
	}
	total := 0
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		next()
		pos := bridge.Positions{}
		for _, r := range rows {
			pos[r.Tenant] = r.Ordinal
		}
		b.StartTimer()
		if err := s.Write(ctx, rows, pos); err != nil {
			b.Fatal(err)
		}
		total += batch
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "rows/s")
}
