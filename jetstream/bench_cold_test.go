package jetstream_test

// BenchmarkLoadThroughColdTier reads one 1,000-event thread of 512-byte
// events three ways on one node: all hot, 900 archived to segment streams
// (jsstore) with the last 100 hot read through the cold tier, and the hot
// 100 alone:
//
//	go test ./jetstream -run '^$' -bench LoadThroughColdTier -benchtime 50x

import (
	"context"
	"testing"

	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/stretchr/testify/require"
)

func BenchmarkLoadThroughColdTier(b *testing.B) {
	nc := testserver.Start(b).Connect(b)
	ctx := context.Background()
	log := newLog(b, nc, jetstream.WithColdStore(newColdStore(b, nc, 1)))
	fill := func(key sessionlog.ThreadKey) []sessionlog.Record {
		for i := 0; i < 1000; i += 100 {
			events := make([]sessionlog.Event, 100)
			for j := range events {
				events[j] = sessionlog.Event{Type: "user_message", Data: payload512}
			}
			_, err := log.Append(ctx, key, events)
			require.NoError(b, err)
		}
		recs, err := log.LoadSince(ctx, key, 0)
		require.NoError(b, err)
		require.Len(b, recs, 1000)
		return recs
	}
	hot := sessionlog.ThreadKey{Tenant: "acme", Thread: "hot"}
	tiered := sessionlog.ThreadKey{Tenant: "acme", Thread: "tiered"}
	fill(hot)
	recs := fill(tiered)
	_, err := log.ArchiveBefore(ctx, tiered, recs[899].Ordinal)
	require.NoError(b, err)
	read := func(b *testing.B, key sessionlog.ThreadKey, want int, opts ...sessionlog.ReadOption) {
		for b.Loop() {
			got, err := log.LoadSince(ctx, key, 0, opts...)
			if err != nil || len(got) != want {
				b.Fatalf("read %d events, err %v", len(got), err)
			}
		}
	}
	b.Run("all-hot", func(b *testing.B) { read(b, hot, 1000) })
	b.Run("900-cold-100-hot", func(b *testing.B) { read(b, tiered, 1000, sessionlog.IncludeArchived()) })
	b.Run("100-hot-only", func(b *testing.B) { read(b, tiered, 100) })
}
