package pgtest_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/jetsession/jetsession/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}

func selectOne(t *testing.T, dsn string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var one int
	var db string
	require.NoError(t, conn.QueryRow(ctx, "select 1, current_database()").Scan(&one, &db))
	require.Equal(t, 1, one)
	return db
}

func TestStart(t *testing.T) {
	t.Parallel()
	require.Equal(t, "postgres", selectOne(t, pgtest.Start(t)))
}

func TestStartShared(t *testing.T) {
	t.Parallel()
	a, b := pgtest.StartShared(t), pgtest.StartShared(t)
	require.NotEqual(t, a, b, "each caller gets its own database")
	require.NotEqual(t, selectOne(t, a), selectOne(t, b))
}
