package sessionlog_test

import (
	"context"
	"testing"
	"time"

	"github.com/jetsession/jetsession/coldstore/memstore"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/sessionlog/sessionlogtest"
	"github.com/stretchr/testify/require"
)

func TestMemoryConformance(t *testing.T) {
	sessionlogtest.Run(t, func(t *testing.T) sessionlog.Log { return sessionlog.NewMemory() },
		sessionlogtest.WithColdTier(func(t *testing.T) sessionlog.Log {
			return sessionlog.NewMemory(sessionlog.WithMemoryColdStore(memstore.New()))
		}),
		sessionlogtest.WithCorrupter(func(t *testing.T, log sessionlog.Log, key sessionlog.ThreadKey) uint64 {
			ord, err := log.(*sessionlog.Memory).InjectCorrupt(key, "not an event", []byte("garbage"))
			require.NoError(t, err)
			return ord
		}))
}

func TestMemoryForgetsIDsAfterTheDuplicateWindow(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	log := sessionlog.NewMemory(
		sessionlog.WithMemoryDuplicateWindow(time.Minute),
		sessionlog.WithMemoryClock(func() time.Time { return now }),
	)
	ctx := context.Background()
	key := sessionlog.ThreadKey{Tenant: "acme", Thread: "t"}
	e := []sessionlog.Event{{ID: "x", Type: "t"}}
	first, err := log.Append(ctx, key, e)
	require.NoError(t, err)
	now = now.Add(59 * time.Second)
	again, err := log.Append(ctx, key, e)
	require.NoError(t, err)
	require.Equal(t, first, again)
	now = now.Add(2 * time.Second)
	later, err := log.Append(ctx, key, e)
	require.NoError(t, err)
	require.Greater(t, later, first, "an ID outside the window is a new event")
}

func TestNewMemoryRefusesInvalidLimits(t *testing.T) {
	require.Panics(t, func() { sessionlog.NewMemory(sessionlog.WithMemoryLimits(sessionlog.Limits{})) })
}
