// Command bridge follows every tenant stream of a jetsession deployment and
// delivers each event at least once to analytics sinks (JSON lines,
// Parquet, PostgreSQL). Run with no flags, it starts an embedded NATS server
// with JetStream and writes JSON lines to standard output; --demo adds a
// small synthetic agent fleet. See --help.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/jetsession/jetsession/bridge"
	"github.com/jetsession/jetsession/bridge/jsonl"
	"github.com/jetsession/jetsession/bridge/parquet"
	"github.com/jetsession/jetsession/bridge/postgres"
	"github.com/jetsession/jetsession/internal/embedded"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "bridge:", err)
		os.Exit(2)
	}
}

// started reports what a running bridge listens on, for tests.
type started struct {
	NATSURL  string
	HTTPAddr string
	Bridge   *bridge.Bridge
}

// run is the whole daemon: it returns when ctx ends (after draining) or on
// a fatal error. Shutdown happens in reverse order of start.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, onStart func(started)) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)
	if cfg.MemoryLimitMiB > 0 && getenv("GOMEMLIMIT") == "" {
		// Collect harder near the limit, so a large backlog does not grow
		// the process past it.
		debug.SetMemoryLimit(int64(cfg.MemoryLimitMiB) << 20)
	}

	// NATS: an embedded server unless a URL was given.
	url := cfg.NATSURL
	if url == "" {
		host, port, _ := net.SplitHostPort(cfg.Listen)
		var p int
		fmt.Sscanf(port, "%d", &p)
		if p == 0 {
			p = -1
		}
		storeDir := filepath.Join(cfg.DataDir, "nats")
		srv, err := embedded.Start(embedded.Config{Host: host, Port: p, StoreDir: storeDir})
		if err != nil {
			return fmt.Errorf("starting the embedded NATS server on %s (use --listen for another address, or --nats to use a running server): %w", cfg.Listen, err)
		}
		defer func() {
			srv.Shutdown()
			srv.WaitForShutdown()
		}()
		url = srv.ClientURL()
		logger.Info("embedded NATS server with JetStream is running; clients connect here", "url", url, "data", storeDir)
	}
	opts := []nats.Option{nats.Name("jetsession-bridge"), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(250 * time.Millisecond)}
	if cfg.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(cfg.NATSCreds))
	}
	if cfg.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(cfg.InboxPrefix))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("connecting to NATS at %s: %w", url, err)
	}
	defer nc.Close()

	scheme := subjects.Scheme{SubjectPrefix: cfg.SubjectPrefix, StreamPrefix: cfg.StreamPrefix}
	// Small read batches and tail buffers keep memory bounded whatever the
	// backlog.
	log, err := jetstream.New(nc, jetstream.WithScheme(scheme), jetstream.WithReadBatch(2000, 2<<20), jetstream.WithTailBuffer(4<<20))
	if err != nil {
		return err
	}

	sink, err := openSinks(ctx, cfg, stdout)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sink.Close(cctx); err != nil {
			logger.Error("closing sinks", "err", err)
		}
	}()

	quarantine, err := bridge.OpenQuarantineFile(cfg.Quarantine, 64<<20)
	if err != nil {
		return err
	}
	defer quarantine.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	b, err := bridge.New(bridge.Config{
		Source: log, Sink: sink, Quarantine: quarantine, Logger: logger, Metrics: bridge.NewMetrics(reg),
		BatchSize: cfg.BatchSize, FlushInterval: cfg.FlushInterval, DiscoverInterval: cfg.DiscoverInterval,
		CatchUpConcurrency: cfg.CatchUp,
	})
	if err != nil {
		return err
	}

	st := started{NATSURL: url, Bridge: b}
	if cfg.HTTPAddr != "" {
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("--http %s: %w", cfg.HTTPAddr, err)
		}
		srv := &http.Server{Handler: httpHandler(b, reg), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		}()
		st.HTTPAddr = ln.Addr().String()
		logger.Info("metrics and health", "url", "http://"+st.HTTPAddr+"/metrics", "health", "http://"+st.HTTPAddr+"/healthz")
	}

	demoDone := make(chan struct{})
	if cfg.Demo {
		demoLog, err := jetstream.New(nc, jetstream.WithScheme(scheme))
		if err != nil {
			return err
		}
		go func() {
			defer close(demoDone)
			runDemo(ctx, demoLog, logger)
		}()
	} else {
		close(demoDone)
	}
	if onStart != nil {
		onStart(st)
	}
	err = b.Run(ctx)
	<-demoDone
	return err
}

func openSinks(ctx context.Context, cfg config, stdout io.Writer) (bridge.Sink, error) {
	var sinks bridge.Multi
	for _, name := range cfg.Sinks {
		var s bridge.Sink
		var err error
		switch name {
		case "jsonl":
			if cfg.JSONLPath == "-" {
				s, err = jsonl.NewWriter(stdout, filepath.Join(cfg.DataDir, "bridge", "jsonl-stdout-positions.json"))
			} else {
				s, err = jsonl.NewFiles(cfg.JSONLPath)
			}
		case "parquet":
			s, err = parquet.New(cfg.ParquetDir, parquet.WithMaxBytes(32<<20), parquet.WithMaxAge(cfg.ParquetAge))
		case "postgres":
			s, err = postgres.New(ctx, cfg.PostgresURL, postgres.WithTable(cfg.PostgresTable))
		}
		if err != nil {
			for _, opened := range sinks {
				opened.Close(ctx)
			}
			return nil, fmt.Errorf("opening the %s sink: %w", name, err)
		}
		sinks = append(sinks, s)
	}
	if len(sinks) == 1 {
		return sinks[0], nil
	}
	return sinks, nil
}

func httpHandler(b *bridge.Bridge, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		// One tenant the sink refuses is reported, not made a failure of
		// the whole bridge: restarting it would not help that tenant and
		// would stall every other.
		stuck := b.Stuck()
		if !b.Healthy() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "unhealthy: NATS disconnected or the sink refused the last batch")
		} else {
			fmt.Fprintln(w, "ok")
		}
		if len(stuck) > 0 {
			fmt.Fprintf(w, "%d tenants stuck (the sink refuses their rows; they are retried, the others flow):\n", len(stuck))
			for _, s := range stuck {
				fmt.Fprintf(w, "  %q since %s: %v\n", s.Tenant, s.Since.UTC().Format(time.RFC3339), s.Err)
			}
		}
	})
	return mux
}

func newLogger(cfg config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(cfg.LogLevel)))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
