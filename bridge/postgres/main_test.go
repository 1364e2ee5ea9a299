package postgres_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/jetsession/jetsession/bridge/postgres"
	"github.com/jetsession/jetsession/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}

// newSink opens a sink on a fresh database and closes it at cleanup.
func newSink(tb testing.TB, opts ...postgres.Option) *postgres.Sink {
	tb.Helper()
	s, _ := newSinkDSN(tb, opts...)
	return s
}

func newSinkDSN(tb testing.TB, opts ...postgres.Option) (*postgres.Sink, string) {
	tb.Helper()
	dsn := pgtest.StartShared(tb)
	s, err := postgres.New(context.Background(), dsn, opts...)
	require.NoError(tb, err)
	tb.Cleanup(func() { s.Close(context.Background()) })
	return s, dsn
}

// connect opens a connection of the test's own, to look behind the sink.
func connect(tb testing.TB, dsn string) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(tb, err)
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
