package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jetsession/jetsession/jetstream"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

const scaleStorage = 16 << 20

// runScale creates n tenants each way and reports what a tenant costs the
// server, and how long one takes to create.
func runScale(ctx context.Context, c config, w io.Writer) error {
	fmt.Fprintln(w, "# scale: an idle tenant with one stream (R1, file), server in this process")
	fmt.Fprintln(w, "| tenants | layout | heap per tenant | RSS per tenant | goroutines per tenant | create p50 | create p99 | total |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|")
	for _, n := range c.Tenants {
		for _, mode := range []string{"stream per tenant, one account", "account per tenant"} {
			var (
				before, after usage
				times         []time.Duration
				total         time.Duration
				err           error
			)
			if mode == "account per tenant" {
				before, after, times, total, err = scaleAccounts(ctx, n)
			} else {
				before, after, times, total, err = scaleStreams(ctx, n)
			}
			if err != nil {
				return fmt.Errorf("%d tenants, %s: %w", n, mode, err)
			}
			heap, rssKiB, gor := perTenant(before, after, n)
			p50, p99 := quantiles(times)
			fmt.Fprintf(w, "| %d | %s | %.1f KiB | %.1f KiB | %.1f | %s | %s | %.1f s |\n", n, mode, heap, rssKiB, gor, ms(p50), ms(p99), total.Seconds())
		}
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1e3) }

func scaleAccounts(ctx context.Context, n int) (before, after usage, times []time.Duration, total time.Duration, err error) {
	_, p, stop, err := accountServer(n, scaleStorage)
	if err != nil {
		return
	}
	defer stop()
	before = measure()
	start := time.Now()
	for i := range n {
		t0 := time.Now()
		if _, err = p.Create(ctx, fmt.Sprintf("tenant-%05d", i), benchLimits(scaleStorage)); err != nil {
			return
		}
		times = append(times, time.Since(t0))
	}
	total = time.Since(start)
	after = measure()
	return
}

func scaleStreams(ctx context.Context, n int) (before, after usage, times []time.Duration, total time.Duration, err error) {
	dir, err := os.MkdirTemp("", "acctbench-")
	if err != nil {
		return
	}
	defer os.RemoveAll(dir)
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true,
		JetStreamMaxMemory: 1 << 30, JetStreamMaxStore: int64(n+1)*scaleStorage + 1<<30, MaxPayload: 1 << 20})
	if err != nil {
		return
	}
	go srv.Start()
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	if !srv.ReadyForConnections(30 * time.Second) {
		err = fmt.Errorf("server not ready")
		return
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		return
	}
	defer nc.Close()
	log, err := jetstream.New(nc, jetstream.WithTenantQuota(scaleStorage))
	if err != nil {
		return
	}
	before = measure()
	start := time.Now()
	for i := range n {
		t0 := time.Now()
		if err = log.EnsureTenant(ctx, fmt.Sprintf("tenant-%05d", i)); err != nil {
			return
		}
		times = append(times, time.Since(t0))
	}
	total = time.Since(start)
	after = measure()
	return
}
