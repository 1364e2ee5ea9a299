package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jetsession/jetsession/internal/pgtest"
	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// BenchmarkBridgeBacklog delivers a backlog of 1,000,000 events over 100
// tenants (10 threads each, 512-byte JSON payloads) through the bridge
// binary into each sink, and reports events/s and the bridge process's
// peak RSS:
//
//	go test ./cmd/bridge -run '^$' -bench BridgeBacklog -benchtime 1x -timeout 30m
//
// BRIDGE_BENCH_EVENTS overrides the backlog size; BRIDGE_BENCH_ARGS adds
// bridge flags.
func BenchmarkBridgeBacklog(b *testing.B) {
	total := 1_000_000
	if v := os.Getenv("BRIDGE_BENCH_EVENTS"); v != "" {
		fmt.Sscan(v, &total)
	}
	const tenants, threads = 100, 10
	srv := testserver.Start(b)
	nc := srv.Connect(b)
	heads := fillBacklog(b, nc, tenants, threads, total)
	bin := bridgeBinary(b)

	sinks := []string{"jsonl", "parquet", "postgres"}
	if v := os.Getenv("BRIDGE_BENCH_SINKS"); v != "" {
		sinks = strings.Split(v, ",")
	}
	for _, sink := range sinks {
		b.Run(sink, func(b *testing.B) {
			for range b.N {
				dir := b.TempDir()
				args := []string{"--nats", srv.URL(), "--http", "", "--data-dir", dir, "--log-level", "warn", "--sink", sink}
				var done func() (map[string]uint64, error)
				switch sink {
				case "jsonl":
					// Standard output, discarded; positions land in the data folder.
					done = positionsFile(filepath.Join(dir, "bridge", "jsonl-stdout-positions.json"))
				case "parquet":
					// A short age limit flushes the tail end of the backlog
					// promptly instead of a minute later.
					args = append(args, "--parquet-dir", filepath.Join(dir, "parquet"), "--parquet-max-age", "1s")
					done = positionsFile(filepath.Join(dir, "parquet", "_positions.json"))
				case "postgres":
					dsn := pgtest.Start(b)
					args = append(args, "--postgres-url", dsn)
					done = func() (map[string]uint64, error) {
						_, _, pos, err := queryPositions(dsn)
						return pos, err
					}
				}
				args = append(args, strings.Fields(os.Getenv("BRIDGE_BENCH_ARGS"))...)
				cmd := exec.Command(bin, args...)
				cmd.Stderr = os.Stderr
				start := time.Now()
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				deadline := time.Now().Add(20 * time.Minute)
				for {
					pos, err := done()
					if err == nil && reached(pos, heads) {
						break
					}
					if time.Now().After(deadline) {
						cmd.Process.Kill()
						b.Fatalf("backlog not delivered within 20 minutes (last error %v)", err)
					}
					time.Sleep(100 * time.Millisecond)
				}
				elapsed := time.Since(start)
				// The kernel's high-water mark of the bridge's own memory
				// (rusage of a child would count the test process it was
				// forked from).
				hwm, err := peakRSS(cmd.Process.Pid)
				if err != nil {
					b.Fatal(err)
				}
				cmd.Process.Signal(syscall.SIGTERM)
				if err := cmd.Wait(); err != nil {
					b.Fatalf("bridge exit: %v", err)
				}
				b.ReportMetric(float64(total)/elapsed.Seconds(), "events/s")
				b.ReportMetric(float64(hwm)/1024, "peak-rss-MiB")
				b.ReportMetric(0, "ns/op")
			}
		})
	}
}

// peakRSS returns a process's resident memory high-water mark in KiB.
func peakRSS(pid int) (int, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kib int
			_, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), &kib)
			return kib, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

func reached(pos, heads map[string]uint64) bool {
	for t, h := range heads {
		if pos[t] < h {
			return false
		}
	}
	return true
}

func positionsFile(path string) func() (map[string]uint64, error) {
	return func() (map[string]uint64, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		pos := map[string]uint64{}
		return pos, json.Unmarshal(b, &pos)
	}
}

// fillBacklog publishes total events in the library's wire format with
// async publishes, and returns each tenant's head.
func fillBacklog(b testing.TB, nc *nats.Conn, tenants, threads, total int) map[string]uint64 {
	log, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	js, err := natsjs.New(nc, natsjs.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	scheme := subjects.Default()
	for tn := range tenants {
		if err := log.EnsureTenant(ctx, fmt.Sprint("tenant-", tn)); err != nil {
			b.Fatal(err)
		}
	}
	payload := make([]byte, 512)
	copy(payload, `{"tool":"search","result":"`)
	for i := 27; i < 510; i++ {
		payload[i] = 'a' + byte(i%26)
	}
	copy(payload[510:], `"}`)
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for i := range total {
		tenant := fmt.Sprint("tenant-", i%tenants)
		thread := fmt.Sprint("t", (i/tenants)%threads)
		h := nats.Header{}
		h.Set(jetstream.HeaderMsgID, jetstream.MsgID(thread, fmt.Sprint("e", i)))
		h.Set(jetstream.HeaderType, "tool_result")
		h.Set(jetstream.HeaderTime, now)
		publishAsync(b, js, &nats.Msg{Subject: scheme.Subject(tenant, thread), Header: h, Data: payload})
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(10 * time.Minute):
		b.Fatal("filling the backlog took too long")
	}
	infos, err := log.Tenants(ctx)
	if err != nil {
		b.Fatal(err)
	}
	heads := map[string]uint64{}
	for _, ti := range infos {
		heads[ti.Tenant] = ti.LastOrdinal
	}
	return heads
}

// publishAsync publishes without waiting for the ack, waiting for
// outstanding acks whenever the client's window is full.
func publishAsync(tb testing.TB, js natsjs.JetStream, m *nats.Msg) {
	for {
		_, err := js.PublishMsgAsync(m)
		if err == nil {
			return
		}
		if !errors.Is(err, natsjs.ErrTooManyStalledMsgs) {
			tb.Fatal(err)
		}
		<-js.PublishAsyncComplete()
	}
}
