// Command chaos checks jetsession under faults: it runs three real
// nats-server processes on loopback, R3 tenants, concurrent writers of
// single events and atomic batches that retry unknown outcomes with the same
// event IDs, live tails and read-your-writes probes, while it SIGKILLs
// stream leaders, pauses nodes with SIGSTOP/SIGCONT and kills the whole
// cluster. A checker then reads every thread back and reports Jepsen's
// categories (lost, duplicated, unexpected, out of order, partial or
// non-contiguous batches, read-your-writes violations, tail gaps and
// duplicates) and the latency of appends, tails and recovery beside the
// cluster's own election times.
//
//	go run ./cmd/chaos                                  # 10 leader kills, a pause, a cluster kill
//	go run ./cmd/chaos --kills 100 --duration 30m       # the long run
//	go run ./cmd/chaos --seed 42 --json summary.json    # replay a schedule, keep the figures
//
// It stops by itself, bounded by --duration and the fault counts, and exits
// 0 when the checker found nothing, 1 on any violation (latencies never
// fail a run), 2 on a mistake in the command line, 3 when the run could not
// be carried out and 4 when no nats-server could be found or installed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return
	}
	fmt.Fprintln(os.Stderr, "chaos:", err)
	os.Exit(exitCode(err))
}

// exitCode maps run's error onto the exit status.
func exitCode(err error) int {
	var ve *violationsError
	var ue usageError
	switch {
	case errors.As(err, &ve):
		return 1
	case errors.As(err, &ue):
		return 2
	case errors.Is(err, ErrNoServer):
		return 4
	default:
		return 3
	}
}
