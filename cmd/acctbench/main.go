// Command acctbench measures what an account per tenant costs, beside one
// account holding every tenant's stream, on in-process servers booted from
// deploy/nats/tenant-accounts.conf:
//
//	go run ./cmd/acctbench --scenario scale --tenants 100,1000,10000
//	go run ./cmd/acctbench --scenario latency --events 5000
//	go run ./cmd/acctbench --scenario bridge --tenants 100,1000
//	go run ./cmd/acctbench --scenario imports --tenants 100,500,1000
//
// scale: server memory and goroutines per tenant, and the time to create
// one, with an account and a stream per tenant against a stream per tenant
// in one account. latency: append and tail latency of an agent in its own
// account against one in the shared account, in alternating rounds.
// bridge: what following every tenant costs a bridge with a connection per
// tenant account (the shipped mechanism), in the bridge's process and on
// the server. imports: the alternative, service imports of each tenant's
// JetStream API into one bridge account: the size of that account's JWT
// and the time to push it as tenants are added.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "acctbench:", err)
		os.Exit(1)
	}
}

type config struct {
	Scenario string
	Tenants  []int
	Events   int
	Child    string // internal: the bridge's process of the bridge scenario
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	var c config
	var tenants string
	fs := flag.NewFlagSet("acctbench", flag.ContinueOnError)
	fs.StringVar(&c.Scenario, "scenario", "scale", "scale, latency, bridge, imports or all")
	fs.StringVar(&tenants, "tenants", "100,1000", "tenant counts, comma separated")
	fs.IntVar(&c.Events, "events", 5000, "appends per mode in the latency scenario")
	fs.StringVar(&c.Child, "bridge-child", "", "internal: run as the bridge process of the bridge scenario")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, t := range strings.Split(tenants, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(t))
		if err != nil || n < 1 {
			return fmt.Errorf("--tenants: %q is not a count", t)
		}
		c.Tenants = append(c.Tenants, n)
	}
	if c.Child != "" {
		return bridgeChild(ctx, c.Child, stdout)
	}
	scenarios := map[string]func(context.Context, config, io.Writer) error{
		"scale": runScale, "latency": runLatency, "bridge": runBridge, "imports": runImports,
	}
	if c.Scenario == "all" {
		for _, name := range []string{"scale", "latency", "bridge", "imports"} {
			if err := scenarios[name](ctx, c, stdout); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		return nil
	}
	f, ok := scenarios[c.Scenario]
	if !ok {
		return fmt.Errorf("--scenario %q: use scale, latency, bridge, imports or all", c.Scenario)
	}
	return f(ctx, c, stdout)
}
