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
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jetsession/jetsession/bridge"
	"github.com/jetsession/jetsession/bridge/jsonl"
	"github.com/jetsession/jetsession/bridge/parquet"
	"github.com/jetsession/jetsession/bridge/postgres"
	"github.com/jetsession/jetsession/internal/embedded"
	"github.com/jetsession/jetsession/internal/natsconn"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/provision"
	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil)
	var ce *configError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return
	case errors.As(err, &ce):
		fmt.Fprintln(os.Stderr, "bridge:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "bridge:", err)
		os.Exit(1)
	}
}

// started reports what a running bridge listens on, for tests.
type started struct {
	NATSURL  string
	HTTPAddr string
	Bridge   *bridge.Bridge
}

// hooks let tests watch a running bridge and force one failure; nil in
// production.
type hooks struct {
	onStart  func(started)
	wrapSink func(bridge.Sink) bridge.Sink
}

// run is the whole daemon. Everything that can be checked is checked
// before anything runs: the configuration, the folders it writes, the
// addresses it listens on, the connection to NATS and JetStream's answer.
// Then its parts run as a group: the first to stop (ctx ending, or a part
// failing) stops the others in reverse order of start, and run returns
// every error they reported.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, h *hooks) error {
	if h == nil {
		h = &hooks{}
	}
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
	if err := checkFolders(cfg); err != nil {
		return err
	}
	g := &group{logger: logger}

	// NATS: an embedded server unless a URL was given.
	ncfg := cfg.NATS
	if ncfg.URL == "" {
		srv, err := startEmbedded(cfg)
		if err != nil {
			return err
		}
		var stopping atomic.Bool
		g.add("embedded NATS server", func() error {
			srv.WaitForShutdown()
			if !stopping.Load() {
				return errors.New("the embedded NATS server stopped")
			}
			return nil
		}, func() {
			stopping.Store(true)
			srv.Shutdown()
		})
		ncfg.URL = srv.ClientURL()
		logger.Info("embedded NATS server with JetStream is running; clients connect here", "url", ncfg.URL, "data", filepath.Join(cfg.DataDir, "nats"))
	}
	// Until the group runs, a failed start stops what already started.
	ready := false
	defer func() {
		if !ready {
			g.abort()
		}
	}()

	if cfg.TenantAccounts && ncfg.InboxPrefix == "" {
		ncfg.InboxPrefix = provision.ReaderInbox
	}
	nc, err := connect(ncfg, logger)
	if err != nil {
		return err
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	var closing atomic.Bool
	g.add("NATS connection", func() error {
		<-closed
		if !closing.Load() {
			return fmt.Errorf("the connection to NATS at %s closed: %v (check the server and the credentials, then restart the bridge)",
				natsconn.Redact(ncfg.URL), nc.LastError())
		}
		return nil
	}, func() {
		closing.Store(true)
		nc.Close()
	})

	scheme := subjects.Scheme{SubjectPrefix: cfg.SubjectPrefix, StreamPrefix: cfg.StreamPrefix}
	// Small read batches and tail buffers keep memory bounded whatever the
	// backlog.
	// Refused calls fail at once with the server's report.
	watcher := jetstream.WatchPermissions(nc)
	defer watcher.Close()
	log, err := jetstream.New(nc, jetstream.WithScheme(scheme), jetstream.WithPermissionWatcher(watcher),
		jetstream.WithReadBatch(2000, 2<<20), jetstream.WithTailBuffer(4<<20))
	if err != nil {
		return err
	}
	var source bridge.Source = log
	if cfg.TenantAccounts {
		src, err := openAccountSource(ctx, ncfg, nc, logger)
		if err != nil {
			return err
		}
		defer src.Close()
		source = src
	} else if err := checkJetStream(ctx, log, ncfg); err != nil {
		return err
	}

	sink, err := openSinks(ctx, cfg, stdout)
	if err != nil {
		return err
	}
	if h.wrapSink != nil {
		sink = h.wrapSink(sink)
	}
	g.hold("sinks", func() error {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sink.Close(cctx); err != nil {
			return fmt.Errorf("closing the sinks: %w", err)
		}
		return nil
	})

	quarantine, err := bridge.OpenQuarantineFile(cfg.Quarantine, 64<<20)
	if err != nil {
		return fmt.Errorf("--quarantine %s: %w (pick a writable --quarantine file or --data-dir)", cfg.Quarantine, err)
	}
	g.hold("quarantine", quarantine.Close)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	b, err := bridge.New(bridge.Config{
		Source: source, Sink: sink, Quarantine: quarantine, Logger: logger, Metrics: bridge.NewMetrics(reg),
		BatchSize: cfg.BatchSize, FlushInterval: cfg.FlushInterval, DiscoverInterval: cfg.DiscoverInterval,
		CatchUpConcurrency: cfg.CatchUp,
	})
	if err != nil {
		return err
	}

	st := started{NATSURL: ncfg.URL, Bridge: b}
	if cfg.HTTPAddr != "" {
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("--http %s: the address is already in use (is another bridge running? pick another --http address, or --http '' to turn it off)", cfg.HTTPAddr)
		}
		if err != nil {
			return fmt.Errorf("--http %s: %w", cfg.HTTPAddr, err)
		}
		srv := &http.Server{Handler: httpHandler(b, reg), ReadHeaderTimeout: 5 * time.Second}
		g.add("HTTP server", func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serving --http %s: %w", cfg.HTTPAddr, err)
			}
			return nil
		}, func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		})
		st.HTTPAddr = ln.Addr().String()
		logger.Info("metrics and health", "url", "http://"+st.HTTPAddr+"/metrics", "health", "http://"+st.HTTPAddr+"/healthz")
	}

	runCtx, stopBridge := context.WithCancel(context.Background())
	defer stopBridge()
	g.add("bridge", func() error {
		if err := b.Run(runCtx); err != nil {
			return err
		}
		if runCtx.Err() == nil {
			return errors.New("the bridge stopped by itself")
		}
		return nil
	}, stopBridge)

	if cfg.Demo {
		demoLog, err := jetstream.New(nc, jetstream.WithScheme(scheme), jetstream.WithPermissionWatcher(watcher))
		if err != nil {
			return err
		}
		demoCtx, stopDemo := context.WithCancel(context.Background())
		defer stopDemo()
		g.add("demo fleet", func() error {
			runDemo(demoCtx, demoLog, logger)
			return nil
		}, stopDemo)
	}

	interrupted := make(chan struct{})
	g.add("signal", func() error {
		select {
		case <-ctx.Done():
			logger.Info("stopping: draining in reverse order of start")
		case <-interrupted:
		}
		return nil
	}, func() { close(interrupted) })

	ready = true
	if h.onStart != nil {
		h.onStart(st)
	}
	return g.run()
}

// checkFolders makes sure every folder the bridge writes can be written,
// before anything starts: a file sink or a positions file that cannot be
// saved would otherwise have the same rows delivered again and again.
func checkFolders(cfg config) error {
	type folder struct{ flag, dir string }
	dirs := []folder{{"--quarantine", filepath.Dir(cfg.Quarantine)}}
	if cfg.NATS.URL == "" {
		dirs = append(dirs, folder{"--data-dir", filepath.Join(cfg.DataDir, "nats")})
	}
	for _, s := range cfg.Sinks {
		switch {
		case s == "jsonl" && cfg.JSONLPath == "-":
			dirs = append(dirs, folder{"--data-dir", filepath.Join(cfg.DataDir, "bridge")}) // positions of stdout
		case s == "jsonl":
			dirs = append(dirs, folder{"--jsonl-path", cfg.JSONLPath})
		case s == "parquet":
			dirs = append(dirs, folder{"--parquet-dir", cfg.ParquetDir})
		}
	}
	for _, f := range dirs {
		if err := embedded.CheckWritable(f.dir); err != nil {
			return fmt.Errorf("%s: %w (the bridge writes there: pick a writable folder)", f.flag, err)
		}
	}
	return nil
}

// startEmbedded runs the embedded NATS server on --listen.
func startEmbedded(cfg config) (*server.Server, error) {
	host, _, _ := net.SplitHostPort(cfg.Listen)
	port, _ := listenAddr(cfg.Listen) // validated
	if port == 0 {
		port = -1
	}
	srv, err := embedded.Start(embedded.Config{Host: host, Port: port, StoreDir: filepath.Join(cfg.DataDir, "nats")})
	if errors.Is(err, embedded.ErrAddressInUse) {
		url := "nats://" + cfg.Listen
		return nil, fmt.Errorf("the embedded NATS server cannot listen on %s: the address is already in use (another NATS server, perhaps 'jetsession serve', runs there: use it with --nats %s, or pick another --listen address)", cfg.Listen, url)
	}
	if err != nil {
		return nil, fmt.Errorf("starting the embedded NATS server on %s: %w (use --listen for another address, or --nats to use a running server)", cfg.Listen, err)
	}
	return srv, nil
}

// connect dials NATS once: a server that cannot be reached at start is an
// error with its reason, not a retry loop. Once connected, the bridge
// reconnects for as long as it runs.
func connect(cfg natsconn.Config, logger *slog.Logger) (*nats.Conn, error) {
	cfg.Name = "jetsession-bridge"
	cfg.ReconnectForever = true
	cfg.ReconnectWait = 250 * time.Millisecond
	var badHeaders asyncNotes
	nc, err := natsconn.Connect(cfg,
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			// A stored message with headers the client cannot parse is
			// reported here on every read of it: any writer on a tenant's
			// subjects can store one, so it is logged at most once a
			// minute (the read hands it back as a corrupt event anyway).
			if errors.Is(err, nats.ErrBadHeaderMsg) {
				if n, ok := badHeaders.due(time.Minute); ok {
					logger.Warn("NATS delivered messages whose stored headers do not parse (foreign writers; they are quarantined)", "count", n)
				}
				return
			}
			logger.Warn("NATS reports an error", "err", err)
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("disconnected from NATS; reconnecting", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			logger.Info("reconnected to NATS", "url", natsconn.Redact(nc.ConnectedUrl()))
		}))
	var ce *natsconn.ConnectError
	if errors.As(err, &ce) {
		hint := ""
		switch ce.Kind {
		case natsconn.Unreachable:
			hint = "check --nats and that the server runs and is reachable; leave --nats empty to run an embedded server"
		case natsconn.Credentials:
			hint = "check --creds, --nkey or --user and --password"
		case natsconn.TLS:
			hint = "check --tls-ca, --tls-cert and --tls-key against the server's TLS settings"
		}
		if hint != "" {
			return nil, fmt.Errorf("%w (%s)", err, hint)
		}
	}
	return nc, err
}

// checkJetStream lists the tenants once, so that a server without
// JetStream, or a user without the rights the bridge needs, is reported at
// start instead of in a warning every discovery interval.
func checkJetStream(ctx context.Context, log *jetstream.Log, cfg natsconn.Config) error {
	const wait = 10 * time.Second
	cctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	_, err := log.Tenants(cctx)
	url := natsconn.Redact(cfg.URL)
	var api *natsjs.APIError
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, jetstream.ErrPermissionDenied), errors.Is(err, nats.ErrPermissionViolation):
		return fmt.Errorf("NATS at %s refuses to let the bridge list the tenant streams: %w (grant the user the bridge role of deploy/nats/accounts.conf; an account allowed only its own reply subjects needs --inbox-prefix)", url, err)
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, natsjs.ErrJetStreamNotEnabled), errors.Is(err, natsjs.ErrJetStreamNotEnabledForAccount),
		errors.As(err, &api) && (api.ErrorCode == natsjs.JSErrCodeJetStreamNotEnabled || api.ErrorCode == natsjs.JSErrCodeJetStreamNotEnabledForAccount):
		return fmt.Errorf("JetStream does not answer at %s: %w (enable JetStream on the server and for the account)", url, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("JetStream at %s did not list the tenant streams within %v: %w (is the server overloaded, or its cluster without a meta leader?)", url, wait, err)
	default:
		return fmt.Errorf("listing the tenant streams at %s: %w", url, err)
	}
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

// asyncNotes counts a recurring report and lets it through at most once
// per period.
type asyncNotes struct {
	mu    sync.Mutex
	count int
	last  time.Time
}

// due counts one report and says whether to log it, with how many there
// were since the last one logged.
func (a *asyncNotes) due(period time.Duration) (int, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.count++
	if now := time.Now(); now.Sub(a.last) >= period {
		n := a.count
		a.count, a.last = 0, now
		return n, true
	}
	return 0, false
}
