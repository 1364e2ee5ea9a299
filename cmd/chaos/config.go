package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"
)

// usageError is a mistake in the command line: nothing was run.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// config is what a run does. defaultConfig holds the defaults; tests build
// one in code and call run's parts with it.
type config struct {
	Seed int64 `json:"seed"`

	// Faults.
	Kills        int           `json:"kills"`
	Pauses       int           `json:"pauses"`
	ClusterKills int           `json:"cluster_kills"`
	ClientFaults int           `json:"client_faults"`
	Duration     time.Duration `json:"duration_ns"`
	Down         time.Duration `json:"down_ns"`
	PauseFor     time.Duration `json:"pause_for_ns"`
	SyncAlways   bool          `json:"sync_always"`
	CreateProbe  bool          `json:"create_probe"`

	// Workload.
	Tenants    int     `json:"tenants"`
	Threads    int     `json:"threads"`
	Writers    int     `json:"writers"`
	Rate       float64 `json:"rate"`
	BatchRatio float64 `json:"batch_ratio"`
	MaxBatch   int     `json:"max_batch"`
	Payload    int     `json:"payload"`

	// Patience: how long one attempt, one op, the drain at the end and the
	// tails' catch-up may take. Generous by default, since a loaded machine
	// slows everything; latencies are reported, never judged.
	AttemptTimeout time.Duration `json:"attempt_timeout_ns"`
	OpTimeout      time.Duration `json:"op_timeout_ns"`
	HealTimeout    time.Duration `json:"heal_timeout_ns"`
	SettleTimeout  time.Duration `json:"settle_timeout_ns"`

	// Where and what to run.
	ServerBin string `json:"-"`
	Dir       string `json:"-"`
	Keep      bool   `json:"-"`
	JSONPath  string `json:"-"`
	Verbose   bool   `json:"-"`
}

func defaultConfig() config {
	return config{
		Kills:          10,
		Pauses:         1,
		ClusterKills:   1,
		ClientFaults:   2,
		Duration:       3 * time.Minute,
		Down:           1500 * time.Millisecond,
		PauseFor:       10 * time.Second,
		CreateProbe:    true,
		Tenants:        2,
		Threads:        4,
		Writers:        4,
		Rate:           20,
		BatchRatio:     0.3,
		MaxBatch:       5,
		Payload:        256,
		AttemptTimeout: 10 * time.Second,
		OpTimeout:      2 * time.Minute,
		HealTimeout:    2 * time.Minute,
		SettleTimeout:  2 * time.Minute,
	}
}

// faults is how many faults the run injects.
func (c *config) faults() int { return c.Kills + c.Pauses + c.ClusterKills + c.ClientFaults }

// Validate reports settings that cannot work, all at once.
func (c *config) Validate() error {
	var errs []error
	atLeast := func(name string, v, min int) {
		if v < min {
			errs = append(errs, fmt.Errorf("--%s must be at least %d, got %d", name, min, v))
		}
	}
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("--%s must be positive, got %v", name, d))
		}
	}
	atLeast("kills", c.Kills, 0)
	atLeast("pauses", c.Pauses, 0)
	atLeast("cluster-kills", c.ClusterKills, 0)
	atLeast("client-faults", c.ClientFaults, 0)
	atLeast("tenants", c.Tenants, 1)
	atLeast("threads", c.Threads, 1)
	atLeast("writers", c.Writers, 1)
	atLeast("max-batch", c.MaxBatch, 2)
	atLeast("payload", c.Payload, 0)
	positive("duration", c.Duration)
	positive("down", c.Down)
	positive("pause-for", c.PauseFor)
	positive("attempt-timeout", c.AttemptTimeout)
	positive("op-timeout", c.OpTimeout)
	positive("heal-timeout", c.HealTimeout)
	positive("settle-timeout", c.SettleTimeout)
	if c.Rate <= 0 {
		errs = append(errs, fmt.Errorf("--rate must be positive, got %v", c.Rate))
	}
	if c.BatchRatio < 0 || c.BatchRatio > 1 {
		errs = append(errs, fmt.Errorf("--batch-ratio must be within 0 and 1, got %v", c.BatchRatio))
	}
	if c.MaxBatch > 1000 {
		errs = append(errs, fmt.Errorf("--max-batch must be at most 1000 (the server's atomic batch limit), got %d", c.MaxBatch))
	}
	if c.Payload > 512<<10 {
		errs = append(errs, fmt.Errorf("--payload must be at most %d bytes, got %d", 512<<10, c.Payload))
	}
	if c.OpTimeout < c.AttemptTimeout {
		errs = append(errs, fmt.Errorf("--op-timeout (%v) must be at least --attempt-timeout (%v)", c.OpTimeout, c.AttemptTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return usageError{err}
	}
	return nil
}

// parseConfig reads the command line.
func parseConfig(args []string, stderr io.Writer) (config, error) {
	c := defaultConfig()
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: chaos [flags]\n\n"+
			"Runs three nats-server processes on loopback, R3 tenants, concurrent writers of events\n"+
			"and atomic batches that retry unknown outcomes with the same IDs, live tails and\n"+
			"read-your-writes probes, while it SIGKILLs stream leaders, pauses nodes and kills the\n"+
			"whole cluster. Then it checks the history (lost, duplicated, unexpected, out of order,\n"+
			"partial or non-contiguous batches, read-your-writes, tail gaps and duplicates) and\n"+
			"reports latencies. Exit status: 0 clean, 1 checker violations, 2 usage, 3 the run\n"+
			"could not be carried out, 4 no nats-server could be found or installed.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.Int64Var(&c.Seed, "seed", 0, "random seed of the workload and the fault schedule (default: from the clock; printed, so a run can be replayed)")
	fs.IntVar(&c.Kills, "kills", c.Kills, "SIGKILLs of a tenant stream's leader (each restarted after --down)")
	fs.IntVar(&c.Pauses, "pauses", c.Pauses, "SIGSTOP/SIGCONT of a stream leader for --pause-for")
	fs.IntVar(&c.ClusterKills, "cluster-kills", c.ClusterKills, "SIGKILLs of every node at once (all restarted after --down)")
	fs.IntVar(&c.ClientFaults, "client-faults", c.ClientFaults, "drops of every client connection at once (writers mid-append, tails mid-delivery), each reconnecting to another node")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "how long the fault phase lasts: faults are spread over it (a slow heal may stretch it by up to --heal-timeout, then the remaining faults are skipped)")
	fs.DurationVar(&c.Down, "down", c.Down, "how long a killed node stays down")
	fs.DurationVar(&c.PauseFor, "pause-for", c.PauseFor, "how long a paused node stays stopped (the servers elect after 4-9 s)")
	fs.BoolVar(&c.SyncAlways, "sync-always", c.SyncAlways, "run the servers with sync_interval: always (fsync before every acknowledgement)")
	fs.BoolVar(&c.CreateProbe, "create-probe", c.CreateProbe, "create a new tenant's stream right after each fault, to time stream creation during faults")
	fs.IntVar(&c.Tenants, "tenants", c.Tenants, "R3 tenants written to")
	fs.IntVar(&c.Threads, "threads", c.Threads, "threads per tenant")
	fs.IntVar(&c.Writers, "writers", c.Writers, "concurrent writers, each on its own connection")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "appends per second per writer, at most")
	fs.Float64Var(&c.BatchRatio, "batch-ratio", c.BatchRatio, "share of appends that are atomic batches")
	fs.IntVar(&c.MaxBatch, "max-batch", c.MaxBatch, "largest batch, in events (batches have 2 to this many)")
	fs.IntVar(&c.Payload, "payload", c.Payload, "padding bytes in each event's payload")
	fs.DurationVar(&c.AttemptTimeout, "attempt-timeout", c.AttemptTimeout, "deadline of one Append attempt (the library retries within it)")
	fs.DurationVar(&c.OpTimeout, "op-timeout", c.OpTimeout, "how long a writer retries one append of unknown outcome before giving up on it")
	fs.DurationVar(&c.HealTimeout, "heal-timeout", c.HealTimeout, "how long to wait for the cluster to be healthy after a fault")
	fs.DurationVar(&c.SettleTimeout, "settle-timeout", c.SettleTimeout, "how long tails may take to deliver everything at the end")
	fs.StringVar(&c.ServerBin, "nats-server", "", "nats-server binary (default: PATH, else GOPATH/bin, installing "+serverVersion+" with go install)")
	fs.StringVar(&c.Dir, "dir", "", "folder for the servers' configs, data and logs (default: a new temporary folder)")
	fs.BoolVar(&c.Keep, "keep", false, "keep the folder after the run (it is always kept when the checker finds violations)")
	fs.StringVar(&c.JSONPath, "json", "", "write the machine-readable summary to this file ('-': standard output, instead of the human summary)")
	fs.BoolVar(&c.Verbose, "verbose", false, "log every fault step and writer error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, usageError{err}
	}
	if fs.NArg() > 0 {
		return c, usageError{fmt.Errorf("unexpected argument %q (every option is a flag; see --help)", fs.Arg(0))}
	}
	return c, c.Validate()
}
