package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// usageError is a mistake in the command line: nothing was measured.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// config is what the command was told. Sizes left at zero take the
// scenario's default (or its --smoke size).
type config struct {
	natsURL    string
	cluster    bool
	replicas   int
	scenarios  []string
	list       bool
	reps       int
	iters      int
	payload    int
	tenants    int
	threads    int
	memThreads []int
	memEvents  int
	catchup    int
	// hydrateEvents is the hydrate scenario's thread length; hydrateSet
	// says it was given, which --smoke does not shrink.
	hydrateEvents int
	hydrateSet    bool
	jsonPath      string
	cpuProfile    string
	format        string
	smoke         bool
	serverPIDs    []int
}

// sizes are the default and --smoke sizes of the scenarios.
type sizes struct {
	reps       int
	tenants    int
	threads    int
	memThreads []int
	memEvents  int
	catchup    int
}

var (
	defaultSizes = sizes{reps: 3, tenants: 1000, threads: 100, memThreads: []int{1000, 10000, 100000}, memEvents: 1_000_000, catchup: 100_000}
	smokeSizes   = sizes{reps: 2, tenants: 5, threads: 4, memThreads: []int{100, 1000}, memEvents: 5000, catchup: 1000}
)

func parseConfig(args []string, stderr io.Writer) (config, error) {
	var c config
	var scenarios, memThreads, pids string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: bench [flags]\n\n"+
			"Runs each jetsession operation interleaved with its raw JetStream twin on the same\n"+
			"server and prints medians and the ratio library/raw. With no --nats URL it starts an\n"+
			"embedded server with a temporary store. --list shows the scenarios.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&c.natsURL, "nats", "", "NATS URL of a running server or cluster (default: an embedded server)")
	fs.BoolVar(&c.cluster, "cluster", false, "start an in-process 3-node cluster and use R3 streams")
	fs.IntVar(&c.replicas, "replicas", 0, "stream replicas (default 1, or 3 with --cluster)")
	fs.StringVar(&scenarios, "scenarios", "", "comma-separated scenarios to run, in the canonical order (default: all default ones)")
	fs.BoolVar(&c.list, "list", false, "list the scenarios and their sizes, then exit")
	fs.IntVar(&c.reps, "reps", 0, fmt.Sprintf("repetitions of each scenario; medians over them are reported (default %d)", defaultSizes.reps))
	fs.IntVar(&c.iters, "iters", 0, "interleaved pairs per repetition for every per-operation scenario (default: each scenario's own, see --list)")
	fs.IntVar(&c.payload, "payload", 512, "event payload bytes")
	fs.IntVar(&c.tenants, "tenants", 0, fmt.Sprintf("scale: tenants (default %d)", defaultSizes.tenants))
	fs.IntVar(&c.threads, "threads", 0, fmt.Sprintf("scale: threads per tenant (default %d)", defaultSizes.threads))
	fs.StringVar(&memThreads, "memory-threads", "", "memory: comma-separated thread counts, one event each (default 1000,10000,100000)")
	fs.IntVar(&c.memEvents, "memory-events", 0, fmt.Sprintf("memory: events over a few threads (default %d)", defaultSizes.memEvents))
	fs.IntVar(&c.catchup, "catchup-events", 0, fmt.Sprintf("catchup: stored events to tail (default %d)", defaultSizes.catchup))
	fs.IntVar(&c.hydrateEvents, "hydrate-events", 1000, "hydrate: events of the thread read, among 100 threads of as many (1000: a 100,000-event tenant; 10000: 1,000,000)")
	fs.StringVar(&c.jsonPath, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the scenarios (and of in-process servers) to this file")
	fs.StringVar(&c.format, "format", "text", "table format on stdout: text or markdown")
	fs.BoolVar(&c.smoke, "smoke", false, "tiny sizes, a few seconds: checks that every scenario runs (numbers mean little)")
	fs.StringVar(&pids, "server-pid", "", "with --nats: comma-separated process ids of the server(s), to read their RSS from /proc")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, usageError{err}
	}
	if fs.NArg() > 0 {
		return c, usagef("unexpected argument %q (every option is a flag; see --help)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	// Sizes: explicit flags win over --smoke, which wins over defaults.
	sz := defaultSizes
	if c.smoke {
		sz = smokeSizes
	}
	if !set["reps"] {
		c.reps = sz.reps
	}
	if !set["tenants"] {
		c.tenants = sz.tenants
	}
	if !set["threads"] {
		c.threads = sz.threads
	}
	if !set["memory-events"] {
		c.memEvents = sz.memEvents
	}
	c.hydrateSet = set["hydrate-events"]
	if !set["catchup-events"] {
		c.catchup = sz.catchup
	}
	c.memThreads = sz.memThreads
	if set["memory-threads"] {
		var err error
		if c.memThreads, err = parseInts(memThreads); err != nil {
			return c, usagef("--memory-threads %q: %v (for example --memory-threads 1000,10000)", memThreads, err)
		}
	}
	if set["server-pid"] {
		var err error
		if c.serverPIDs, err = parseInts(pids); err != nil {
			return c, usagef("--server-pid %q: %v (for example --server-pid 4242)", pids, err)
		}
	}

	var errs []error
	if c.replicas == 0 {
		c.replicas = 1
		if c.cluster {
			c.replicas = 3
		}
	}
	switch {
	case c.replicas < 1 || c.replicas > 5:
		errs = append(errs, fmt.Errorf("--replicas must be 1 to 5, got %d", c.replicas))
	case c.replicas > 1 && c.natsURL == "" && !c.cluster:
		errs = append(errs, fmt.Errorf("--replicas %d needs a cluster: add --cluster for an in-process 3-node cluster, or --nats with the URL of one", c.replicas))
	case c.cluster && c.replicas > 3:
		errs = append(errs, fmt.Errorf("--cluster starts 3 nodes, which cannot hold %d replicas", c.replicas))
	}
	if c.cluster && c.natsURL != "" {
		errs = append(errs, errors.New("--cluster and --nats exclude each other: --cluster starts its own servers"))
	}
	if len(c.serverPIDs) > 0 && c.natsURL == "" {
		errs = append(errs, errors.New("--server-pid only applies with --nats (the command measures the servers it starts itself)"))
	}
	positive := func(name string, v, min int) {
		if v < min {
			errs = append(errs, fmt.Errorf("--%s must be at least %d, got %d", name, min, v))
		}
	}
	positive("reps", c.reps, 1)
	positive("iters", c.iters, 0)
	positive("payload", c.payload, 1)
	positive("tenants", c.tenants, 1)
	positive("threads", c.threads, 1)
	positive("memory-events", c.memEvents, 1)
	positive("catchup-events", c.catchup, 1)
	positive("hydrate-events", c.hydrateEvents, 1)
	if c.payload > 512<<10 {
		errs = append(errs, fmt.Errorf("--payload must be at most %d bytes, got %d", 512<<10, c.payload))
	}
	if c.format != "text" && c.format != "markdown" {
		errs = append(errs, fmt.Errorf("--format must be text or markdown, got %q", c.format))
	}

	if scenarios == "" {
		for _, s := range allScenarios {
			if s.byDefault {
				c.scenarios = append(c.scenarios, s.name)
			}
		}
	} else {
		var unknown []string
		want := map[string]bool{}
		for _, name := range strings.Split(scenarios, ",") {
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			if findScenario(name) == nil {
				unknown = append(unknown, strconv.Quote(name))
			}
			want[name] = true
		}
		if len(unknown) > 0 {
			errs = append(errs, fmt.Errorf("unknown scenario %s (known: %s; see --list)", strings.Join(unknown, ", "), strings.Join(scenarioNames(), ", ")))
		} else if len(want) == 0 {
			errs = append(errs, errors.New("--scenarios names no scenario (see --list)"))
		}
		// The canonical order runs the isolated memory and scale runs last,
		// after the shared server is gone.
		for _, s := range allScenarios {
			if want[s.name] {
				c.scenarios = append(c.scenarios, s.name)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return c, usageError{err}
	}
	return c, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%q is not a positive whole number", strings.TrimSpace(part))
		}
		out = append(out, v)
	}
	return out, nil
}

func scenarioNames() []string {
	names := make([]string, len(allScenarios))
	for i, s := range allScenarios {
		names[i] = s.name
	}
	return names
}

func findScenario(name string) *scenario {
	i := slices.IndexFunc(allScenarios, func(s *scenario) bool { return s.name == name })
	if i < 0 {
		return nil
	}
	return allScenarios[i]
}
