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
	"strings"
	"time"

	"github.com/jetsession/jetsession/subjects"
)

// config is everything the bridge can be told, by flags or environment.
type config struct {
	NATSURL     string
	NATSCreds   string
	InboxPrefix string
	Listen      string
	DataDir     string

	Sinks         []string
	JSONLPath     string
	ParquetDir    string
	ParquetAge    time.Duration
	PostgresURL   string
	PostgresTable string

	HTTPAddr   string
	Demo       bool
	Quarantine string

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

// parseConfig reads flags, each of which may also come from an environment
// variable JETSESSION_<FLAG> (upper case, '-' as '_'); NATS_URL and
// DATABASE_URL are honoured too. Flags win over the environment.
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
	fs.StringVar(&c.NATSURL, "nats", "", "NATS server URL(s), comma separated (env NATS_URL too); empty runs an embedded server")
	fs.StringVar(&c.NATSCreds, "creds", "", "NATS credentials file (as for the nats CLI)")
	fs.StringVar(&c.InboxPrefix, "inbox-prefix", "", "reply subject prefix for accounts that allow only their own inbox (e.g. _INBOX_BRIDGE)")
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
	fs.StringVar(&c.SubjectPrefix, "subject-prefix", subjects.DefaultSubjectPrefix, "subject prefix of thread subjects")
	fs.StringVar(&c.StreamPrefix, "stream-prefix", subjects.DefaultStreamPrefix, "name prefix of tenant streams")
	fs.IntVar(&c.BatchSize, "batch-size", 5000, "most events handed to the sinks at once")
	fs.DurationVar(&c.FlushInterval, "flush-interval", 200*time.Millisecond, "longest wait for a batch to fill")
	fs.DurationVar(&c.DiscoverInterval, "discover-interval", 2*time.Second, "how often tenant streams are listed")
	fs.IntVar(&c.CatchUp, "catch-up", 4, "tenants catching up on a backlog at once (bounds memory)")
	fs.IntVar(&c.MemoryLimitMiB, "memory-limit", 160, "soft memory limit in MiB for the Go runtime (GOMEMLIMIT wins when set; 0 leaves it off)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")

	var envErrs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := "JETSESSION_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v := getenv(name)
		switch {
		case v == "" && f.Name == "nats":
			v = getenv("NATS_URL")
		case v == "" && f.Name == "postgres-url":
			v = getenv("DATABASE_URL")
		}
		if v != "" {
			if err := f.Value.Set(v); err != nil {
				envErrs = append(envErrs, fmt.Errorf("environment %s=%q: %v", name, v, err))
			}
		}
	})
	if err := errors.Join(envErrs...); err != nil {
		return c, err
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
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
	if c.NATSURL == "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("--listen %q: %v", c.Listen, err))
		}
		if c.DataDir == "" {
			errs = append(errs, errors.New("--data-dir is required to run the embedded server"))
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
	if c.BatchSize <= 0 {
		errs = append(errs, fmt.Errorf("--batch-size must be positive, got %d", c.BatchSize))
	}
	if c.FlushInterval <= 0 {
		errs = append(errs, fmt.Errorf("--flush-interval must be positive, got %v", c.FlushInterval))
	}
	if c.DiscoverInterval <= 0 {
		errs = append(errs, fmt.Errorf("--discover-interval must be positive, got %v", c.DiscoverInterval))
	}
	if c.CatchUp <= 0 {
		errs = append(errs, fmt.Errorf("--catch-up must be positive, got %d", c.CatchUp))
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
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	return nil
}
