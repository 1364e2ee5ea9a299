// Command bench measures jetsession against raw JetStream on the same server
// in the same run: each library operation runs interleaved (A B A B) with
// its raw JetStream twin, over several repetitions, and the table reports
// medians and the ratio library/raw. It also measures how the library
// scales over many tenants and what servers and clients hold in memory.
//
//	go run ./cmd/bench                    # every scenario, embedded server
//	go run ./cmd/bench --smoke            # tiny sizes, a few seconds
//	go run ./cmd/bench --list             # the scenarios and their sizes
//	go run ./cmd/bench --cluster          # R3 on an in-process 3-node cluster
//	go run ./cmd/bench --nats nats://host:4222 --server-pid 1234
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
	// A server child started by the memory and scale scenarios runs the
	// same binary: serve and stop here.
	if serveChildIfAsked() {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
