package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jetsession/jetsession/internal/natsconn"
	"github.com/jetsession/jetsession/subjects"
)

// config is everything the bridge can be told, by flags or environment.
type config struct {
	// NATS is where the tenants live; an empty URL runs an embedded
	// server on Listen.
	NATS    natsconn.Config
	Listen  string
	DataDir string

	Sinks         []string
	JSONLPath     string
	ParquetDir    string
	ParquetAge    time.Duration
	PostgresURL   string
	PostgresTable string

	HTTPAddr   string
	Demo       bool
	Quarantine string
	// TenantAccounts follows a deployment with an account per tenant: the
	// credentials are a reader of the operations account (accounts.go).
	TenantAccounts bool

	SubjectPrefix string
	StreamPrefix  string

	BatchSize        int
	FlushInterval    time.Duration
	DiscoverInterval time.Duration
	CatchUp          int
	MemoryLimitMiB   int
	LogLevel         string
	LogFormat        string
}

var knownSinks = []string{"jsonl", "parquet", "postgres"}

// Bounds of the tuning flags: below or above them the bridge would spin,
// or allocate batches no sink could take.
const (
	maxBatchSize        = 1_000_000
	minFlushInterval    = time.Millisecond
	minDiscoverInterval = 100 * time.Millisecond
	maxCatchUp          = 1000
)

// parseConfig reads flags, each of which may also come from an environment
// variable JETSESSION_<FLAG> (upper case, '-' as '_'); the nats CLI's
// variables (NATS_URL, NATS_CREDS, NATS_USER, ...) and DATABASE_URL are
// honoured too. Flags win over the environment.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	var sinks string
	fs := flag.NewFlagSet("bridge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: bridge [flags]\n\nFollows every tenant stream and delivers each event to analytics sinks.\n"+
			"With no --nats URL it runs an embedded NATS server with JetStream.\n"+
			"Every flag can also be set as JETSESSION_<FLAG> in the environment.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	c.NATS.AddFlags(fs, "NATS server `URL`(s), comma separated (env NATS_URL too); empty runs an embedded server")
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:4222", "client address of the embedded NATS server")
	fs.StringVar(&c.DataDir, "data-dir", "jetsession-data", "folder for the embedded server's JetStream data and the bridge's file sinks")
	fs.StringVar(&sinks, "sink", "jsonl", "sinks, comma separated: "+strings.Join(knownSinks, ", "))
	fs.StringVar(&c.JSONLPath, "jsonl-path", "-", "JSON lines destination: - for standard output, or a folder for rotating files")
	fs.StringVar(&c.ParquetDir, "parquet-dir", "", "Parquet output folder (default <data-dir>/parquet)")
	fs.DurationVar(&c.ParquetAge, "parquet-max-age", time.Minute, "longest time Parquet rows stay buffered before a file is written")
	fs.StringVar(&c.PostgresURL, "postgres-url", "", "PostgreSQL connection string for the postgres sink (env DATABASE_URL too)")
	fs.StringVar(&c.PostgresTable, "postgres-table", "jetsession_events", "PostgreSQL table for events; positions go to <table>_positions")
	fs.StringVar(&c.Quarantine, "quarantine", "", "JSON lines file keeping messages that are not valid events (default <data-dir>/bridge/quarantine.jsonl)")
	fs.StringVar(&c.HTTPAddr, "http", "127.0.0.1:9464", "address for /metrics and /healthz; empty disables it")
	fs.BoolVar(&c.Demo, "demo", false, "also run a small synthetic agent fleet appending events")
	fs.BoolVar(&c.TenantAccounts, "tenant-accounts", false, "an account per tenant: --creds is the bridge's reader of the operations account (creds/bridge.creds of 'jetsession tenant init'); every tenant of the registry is followed through its own account")
	fs.StringVar(&c.SubjectPrefix, "subject-prefix", subjects.DefaultSubjectPrefix, "subject prefix of thread subjects")
	fs.StringVar(&c.StreamPrefix, "stream-prefix", subjects.DefaultStreamPrefix, "name prefix of tenant streams")
	fs.IntVar(&c.BatchSize, "batch-size", 5000, "most events handed to the sinks at once, 1 to 1000000")
	fs.DurationVar(&c.FlushInterval, "flush-interval", 200*time.Millisecond, "longest wait for a batch to fill, at least 1ms")
	fs.DurationVar(&c.DiscoverInterval, "discover-interval", 2*time.Second, "how often tenant streams are listed, at least 100ms")
	fs.IntVar(&c.CatchUp, "catch-up", 4, "tenants catching up on a backlog at once, 1 to 1000 (bounds memory)")
	fs.IntVar(&c.MemoryLimitMiB, "memory-limit", 160, "soft memory limit in MiB for the Go runtime (GOMEMLIMIT wins when set; 0 leaves it off)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")

	var envErrs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := "JETSESSION_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v := getenv(name)
		switch {
		case v == "" && natsconn.EnvVars[f.Name] != "":
			name = natsconn.EnvVars[f.Name]
			v = getenv(name)
		case v == "" && f.Name == "postgres-url":
			name = "DATABASE_URL"
			v = getenv(name)
		}
		if v != "" {
			if err := f.Value.Set(v); err != nil {
				envErrs = append(envErrs, fmt.Errorf("environment %s=%q: %v", name, v, err))
			}
		}
	})
	if err := errors.Join(envErrs...); err != nil {
		return c, &configError{err}
	}
	if err := fs.Parse(args); err != nil {
		return c, &configError{err}
	}
	if fs.NArg() > 0 {
		return c, &configError{fmt.Errorf("unexpected arguments: %q", fs.Args())}
	}
	for _, s := range strings.Split(sinks, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.Sinks = append(c.Sinks, s)
		}
	}
	if c.ParquetDir == "" {
		c.ParquetDir = c.DataDir + string(os.PathSeparator) + "parquet"
	}
	if c.Quarantine == "" {
		c.Quarantine = filepath.Join(c.DataDir, "bridge", "quarantine.jsonl")
	}
	return c, c.validate()
}

// validate reports every problem at once, before anything starts.
func (c config) validate() error {
	var errs []error
	if len(c.Sinks) == 0 {
		errs = append(errs, errors.New("--sink: at least one sink is required"))
	}
	for _, s := range c.Sinks {
		if !slices.Contains(knownSinks, s) {
			errs = append(errs, fmt.Errorf("--sink: unknown sink %q (known: %s)", s, strings.Join(knownSinks, ", ")))
		}
	}
	if slices.Contains(c.Sinks, "postgres") && c.PostgresURL == "" {
		errs = append(errs, errors.New("--postgres-url (or DATABASE_URL) is required by the postgres sink"))
	}
	if c.NATS.URL == "" {
		if _, err := listenAddr(c.Listen); err != nil {
			errs = append(errs, err)
		}
		// The embedded server needs no credentials, but files named
		// must still be right: check everything but the URL.
		embedded := c.NATS
		embedded.URL = "nats://127.0.0.1"
		if err := embedded.Validate(); err != nil {
			errs = append(errs, err)
		}
	} else if err := c.NATS.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir is required: the bridge keeps its positions and quarantine there"))
	}
	if c.TenantAccounts {
		if c.NATS.URL == "" || c.NATS.Creds == "" {
			errs = append(errs, errors.New("--tenant-accounts needs --nats and --creds (the bridge's reader of the operations account, creds/bridge.creds)"))
		}
		if c.Demo {
			errs = append(errs, errors.New("--tenant-accounts and --demo do not go together: the provisioner creates tenants there"))
		}
	}
	if c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			errs = append(errs, fmt.Errorf("--http %q: %v", c.HTTPAddr, err))
		}
	}
	if err := (subjects.Scheme{SubjectPrefix: c.SubjectPrefix, StreamPrefix: c.StreamPrefix}).Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.ParquetAge <= 0 {
		errs = append(errs, fmt.Errorf("--parquet-max-age must be positive, got %v", c.ParquetAge))
	}
	if c.BatchSize <= 0 || c.BatchSize > maxBatchSize {
		errs = append(errs, fmt.Errorf("--batch-size must be 1 to %d, got %d", maxBatchSize, c.BatchSize))
	}
	if c.FlushInterval < minFlushInterval {
		errs = append(errs, fmt.Errorf("--flush-interval must be at least %v, got %v", minFlushInterval, c.FlushInterval))
	}
	if c.DiscoverInterval < minDiscoverInterval {
		errs = append(errs, fmt.Errorf("--discover-interval must be at least %v, got %v", minDiscoverInterval, c.DiscoverInterval))
	}
	if c.CatchUp <= 0 || c.CatchUp > maxCatchUp {
		errs = append(errs, fmt.Errorf("--catch-up must be 1 to %d, got %d", maxCatchUp, c.CatchUp))
	}
	if c.MemoryLimitMiB < 0 {
		errs = append(errs, fmt.Errorf("--memory-limit must not be negative, got %d", c.MemoryLimitMiB))
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		errs = append(errs, fmt.Errorf("--log-level %q: use debug, info, warn or error", c.LogLevel))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q: use text or json", c.LogFormat))
	}
	if err := errors.Join(errs...); err != nil {
		return &configError{err}
	}
	return nil
}

// configError is a configuration refused before anything started.
type configError struct{ err error }

func (e *configError) Error() string { return "invalid configuration:\n" + e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

// listenAddr checks the embedded server's --listen address and returns its
// port (0: any free one).
func listenAddr(listen string) (int, error) {
	_, portText, err := net.SplitHostPort(listen)
	if err != nil {
		return 0, fmt.Errorf("--listen %q: %v (use HOST:PORT, for example 127.0.0.1:4222)", listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return 0, fmt.Errorf("--listen %q: the port must be a number from 0 to 65535", listen)
	}
	return port, nil
}
