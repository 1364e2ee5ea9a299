package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestMain lets the bridge scenario run this test binary as its bridge
// process.
func TestMain(m *testing.M) {
	for i, a := range os.Args {
		if a == "--bridge-child" && i+1 < len(os.Args) {
			if err := run(context.Background(), []string{"--bridge-child", os.Args[i+1]}, os.Stdout); err != nil {
				os.Stderr.WriteString(err.Error() + "\n")
				os.Exit(1)
			}
			os.Exit(0)
		}
	}
	os.Exit(m.Run())
}

// TestEveryScenarioRunsOnAFewTenants is a smoke run: figures are printed,
// never judged.
func TestEveryScenarioRunsOnAFewTenants(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	require.NoError(t, run(ctx, []string{"--scenario", "all", "--tenants", "3", "--events", "100"}, &out))
	for _, want := range []string{"# scale", "# latency", "# bridge", "# imports", "account per tenant, a connection each"} {
		require.Contains(t, out.String(), want)
	}
	require.NotContains(t, out.String(), "refused")
	t.Log("\n" + strings.TrimSpace(out.String()))
}
