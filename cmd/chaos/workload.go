package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// eventType is the type of every event the workload appends.
const eventType = "chaos"

// probeThread and rawThread are the threads of the read-your-writes probes
// and of the raw recovery probes; writers use t0, t1, ...
const (
	probeThread = "ryw"
	rawThread   = "raw"
)

// connect opens a connection to the cluster that prefers urls[0] and
// reconnects to any node, forever, a quarter of a second apart.
func connect(urls []string, name string, log *slog.Logger) (*nats.Conn, error) {
	nc, err := nats.Connect(strings.Join(urls, ","),
		nats.Name(name),
		nats.DontRandomize(),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.Timeout(2*time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Debug("disconnected", "conn", name, "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Debug("reconnected", "conn", name, "to", nc.ConnectedUrl())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Debug("asynchronous NATS error", "conn", name, "err", err)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("connecting %s to %s: %w", name, urls[0], err)
	}
	return nc, nil
}

// workload runs writers, probes and tails against the cluster, and
// records what they did and saw.
type workload struct {
	cfg     config
	cl      *cluster
	log     *slog.Logger
	tenants []string
	seed    uint64

	conns []*nats.Conn
	// clients are the connections of Logs (writers, tails, probes, the
	// per-node Logs): what a client fault drops. The raw probes' and the
	// advisories' connections stay up.
	clients []*nats.Conn
	// nodeLogs[i] is a Log whose connection prefers node i; rawConns[i] is
	// a plain connection to node i only, for the raw probe.
	nodeLogs []*jetstream.Log
	rawConns []*nats.Conn
	adv      *advisories

	stop    chan struct{} // closed: start no new appends
	writers sync.WaitGroup
	tailsWG sync.WaitGroup
	probes  sync.WaitGroup // the per-fault probes

	mu       sync.Mutex
	ops      []*op
	probeLog []probe
	tails    []*tailer
	errKinds map[string]int
}

func newWorkload(cfg config, cl *cluster, log *slog.Logger, tenants []string, seed uint64) *workload {
	return &workload{cfg: cfg, cl: cl, log: log, tenants: tenants, seed: seed, stop: make(chan struct{}), errKinds: map[string]int{}, adv: newAdvisories()}
}

// newLog opens a connection preferring node first and a Log on it.
func (w *workload) newLog(first int, name string) (*jetstream.Log, *nats.Conn, error) {
	nc, err := connect(w.cl.urls(first), name, w.log)
	if err != nil {
		return nil, nil, err
	}
	w.conns = append(w.conns, nc)
	w.mu.Lock()
	w.clients = append(w.clients, nc)
	w.mu.Unlock()
	l, err := jetstream.New(nc, jetstream.WithReplicas(3))
	if err != nil {
		return nil, nil, err
	}
	return l, nc, nil
}

// clientConns returns the connections a client fault drops.
func (w *workload) clientConns() []*nats.Conn {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*nats.Conn(nil), w.clients...)
}

// open makes the per-node Logs and raw connections.
func (w *workload) open() error {
	for i := range w.cl.nodes {
		l, _, err := w.newLog(i, fmt.Sprintf("chaos-node-%d", i+1))
		if err != nil {
			return err
		}
		w.nodeLogs = append(w.nodeLogs, l)
		nc, err := connect([]string{w.cl.nodes[i].url()}, fmt.Sprintf("chaos-raw-%d", i+1), w.log)
		if err != nil {
			return err
		}
		w.conns = append(w.conns, nc)
		w.rawConns = append(w.rawConns, nc)
		if err := w.adv.listen(nc); err != nil {
			return err
		}
	}
	return nil
}

func (w *workload) close() {
	for _, nc := range w.conns {
		nc.Close()
	}
}

// start launches the tails, the read-your-writes probes and the writers.
// ctx ends everything at once; stopAppends ends the appends gracefully.
func (w *workload) start(ctx, tailCtx context.Context) error {
	n := len(w.cl.nodes)
	for k, tenant := range w.tenants {
		for _, thread := range []string{"", "t0"} {
			conn := fmt.Sprintf("chaos-tail-%d", k)
			first := (k + 2) % n
			if thread != "" {
				conn += "-" + thread
				first = (k + 1) % n
			}
			tl, _, err := w.newLog(first, conn)
			if err != nil {
				return err
			}
			w.startTail(tailCtx, tl, conn, tenant, thread)
		}
	}
	for k, tenant := range w.tenants {
		wl, _, err := w.newLog(k%n, fmt.Sprintf("chaos-probe-%d-write", k))
		if err != nil {
			return err
		}
		rl, _, err := w.newLog((k+1)%n, fmt.Sprintf("chaos-probe-%d-read", k))
		if err != nil {
			return err
		}
		rng := rand.New(rand.NewPCG(w.seed, uint64(1000+k)))
		w.writers.Go(func() { w.probeLoop(ctx, wl, rl, tenant, rng) })
	}
	for i := range w.cfg.Writers {
		l, _, err := w.newLog(i%n, fmt.Sprintf("chaos-writer-%d", i))
		if err != nil {
			return err
		}
		rng := rand.New(rand.NewPCG(w.seed, uint64(i)))
		w.writers.Go(func() { w.writeLoop(ctx, l, fmt.Sprintf("w%d", i), rng) })
	}
	return nil
}

// stopAppends makes writers and probes finish their current append (within
// --op-timeout) and start no new one, and waits for them.
func (w *workload) stopAppends() {
	close(w.stop)
	w.writers.Wait()
	w.probes.Wait()
}

// pace waits for the next append slot of a writer, jittered around
// 1/--rate; false when appends are to stop.
func (w *workload) pace(rng *rand.Rand) bool {
	d := time.Duration(float64(time.Second) / w.cfg.Rate * (0.5 + rng.Float64()))
	select {
	case <-w.stop:
		return false
	case <-time.After(d):
		return true
	}
}

// newOp builds an append of n events with unique tokens; the library
// fills their IDs.
func (w *workload) newOp(writer string, seq int, tenant, thread string, n int) (*op, []sessionlog.Event) {
	o := &op{Writer: writer, Tenant: tenant, Thread: thread, Events: make([]eventRef, n)}
	events := make([]sessionlog.Event, n)
	pad := strings.Repeat("x", w.cfg.Payload)
	for i := range events {
		tok := fmt.Sprintf("%s/%d/%d", writer, seq, i)
		data, _ := json.Marshal(payload{Token: tok, Pad: pad})
		events[i] = sessionlog.Event{Type: eventType, Data: data}
		o.Events[i].Token = tok
	}
	return o, events
}

func (w *workload) writeLoop(ctx context.Context, l *jetstream.Log, name string, rng *rand.Rand) {
	for seq := 0; w.pace(rng); seq++ {
		tenant := w.tenants[rng.IntN(len(w.tenants))]
		thread := fmt.Sprintf("t%d", rng.IntN(w.cfg.Threads))
		n := 1
		if rng.Float64() < w.cfg.BatchRatio {
			n = 2 + rng.IntN(w.cfg.MaxBatch-1)
		}
		o, events := w.newOp(name, seq, tenant, thread, n)
		w.appendOp(ctx, l, o, events)
		w.record(o)
	}
}

// probeLoop appends one event through wl, and as soon as it is
// acknowledged reads it back through rl (a connection to another node).
func (w *workload) probeLoop(ctx context.Context, wl, rl *jetstream.Log, tenant string, rng *rand.Rand) {
	key := sessionlog.ThreadKey{Tenant: tenant, Thread: probeThread}
	for seq := 0; w.pace(rng); seq++ {
		o, events := w.newOp("probe-"+tenant, seq, tenant, probeThread, 1)
		w.appendOp(ctx, wl, o, events)
		w.record(o)
		if o.Outcome != outcomeAcked {
			continue
		}
		p := probe{Tenant: tenant, Thread: probeThread, Ordinal: o.AckOrdinal, ID: o.Events[0].ID, AckAt: o.End, Unread: true}
		deadline := time.Now().Add(w.cfg.OpTimeout)
		for ctx.Err() == nil && time.Now().Before(deadline) {
			actx, cancel := context.WithTimeout(ctx, w.cfg.AttemptTimeout)
			recs, err := rl.LoadSince(actx, key, o.AckOrdinal-1)
			cancel()
			if err != nil {
				p.ReadErrors++
				sleepCtx(ctx, 20*time.Millisecond)
				continue
			}
			p.Unread = false
			p.Found = len(recs) > 0 && recs[0].Ordinal == o.AckOrdinal && recs[0].ID == p.ID
			p.Got = "nothing"
			if len(recs) > 0 {
				p.Got = fmt.Sprintf("ordinal %d (id %q)", recs[0].Ordinal, recs[0].ID)
			}
			break
		}
		w.mu.Lock()
		w.probeLog = append(w.probeLog, p)
		w.mu.Unlock()
	}
}

// definite are the errors after which retrying the same append cannot
// help: they say what the log decided.
var definite = []error{
	sessionlog.ErrInvalidKey, sessionlog.ErrInvalidEvent, sessionlog.ErrEventTooLarge, sessionlog.ErrBatchTooLarge,
	sessionlog.ErrConflict, sessionlog.ErrPartialRetry, sessionlog.ErrQuotaExceeded, jetstream.ErrPermissionDenied,
}

// appendOp appends events, retrying the same slice (so the same IDs the
// library filled in on the first attempt) until one attempt is
// acknowledged, a definite error, or --op-timeout.
func (w *workload) appendOp(ctx context.Context, l *jetstream.Log, o *op, events []sessionlog.Event) {
	key := sessionlog.ThreadKey{Tenant: o.Tenant, Thread: o.Thread}
	o.Start = time.Now()
	deadline := o.Start.Add(w.cfg.OpTimeout)
	var ids []string
	defer func() {
		for i := range events {
			o.Events[i].ID = events[i].ID
		}
	}()
	for {
		actx, cancel := context.WithDeadline(ctx, minTime(time.Now().Add(w.cfg.AttemptTimeout), deadline))
		last, err := l.Append(actx, key, events)
		cancel()
		o.Attempts++
		if ids == nil && events[0].ID != "" {
			for _, e := range events {
				ids = append(ids, e.ID)
			}
		}
		for i, id := range ids {
			if events[i].ID != id {
				err = errors.Join(err, fmt.Errorf("chaos: the event IDs changed between attempts (%q became %q)", id, events[i].ID))
			}
		}
		if err == nil {
			o.Outcome, o.AckOrdinal, o.End = outcomeAcked, last, time.Now()
			return
		}
		w.noteError(o, err)
		stop := ctx.Err() != nil || !time.Now().Before(deadline)
		for _, d := range definite {
			stop = stop || errors.Is(err, d)
		}
		if stop {
			o.End = time.Now()
			return
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
}

// maxOpErrors bounds the errors kept per op.
const maxOpErrors = 4

func (w *workload) noteError(o *op, err error) {
	if len(o.Errors) < maxOpErrors {
		o.Errors = append(o.Errors, err.Error())
	}
	kind := errorKind(err)
	w.mu.Lock()
	w.errKinds[kind]++
	w.mu.Unlock()
	w.log.Debug("append attempt failed", "writer", o.Writer, "tenant", o.Tenant, "thread", o.Thread, "attempt", o.Attempts, "err", err)
}

var (
	quotedRE = regexp.MustCompile(`"[^"]*"`)
	digitsRE = regexp.MustCompile(`[0-9]+`)
)

// errorKind is an error's message with names and numbers blanked, so that
// errors of one kind count together.
func errorKind(err error) string {
	s := quotedRE.ReplaceAllString(err.Error(), `"…"`)
	s = digitsRE.ReplaceAllString(s, "N")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func (w *workload) record(o *op) {
	w.mu.Lock()
	w.ops = append(w.ops, o)
	w.mu.Unlock()
}

// tailer is one live tail and what it delivered.
type tailer struct {
	log *tailLog
	top atomic.Uint64 // the last ordinal yielded
	mu  sync.Mutex    // guards log while the tail runs
}

func (w *workload) startTail(ctx context.Context, l *jetstream.Log, conn, tenant, thread string) {
	name := "tail " + tenant
	if thread != "" {
		name += "/" + thread
	}
	t := &tailer{log: &tailLog{Name: name, Conn: conn, Tenant: tenant, Thread: thread}}
	w.tails = append(w.tails, t)
	w.tailsWG.Go(func() { t.run(ctx, l, w.log) })
}

// run follows the tail until ctx ends. A yielded error is recorded (the
// checker counts it) and the tail resumes after the last ordinal it
// yielded, or after the ordinal of a corrupt event, so that one is not met
// again.
func (t *tailer) run(ctx context.Context, l *jetstream.Log, log *slog.Logger) {
	var skip uint64
	for ctx.Err() == nil {
		cursor := max(t.top.Load(), skip)
		var err error
		if t.log.Thread == "" {
			for rec, e := range l.TailTenant(ctx, t.log.Tenant, cursor) {
				if err = e; err != nil {
					break
				}
				t.deliver(rec.Thread, rec.Record)
			}
		} else {
			key := sessionlog.ThreadKey{Tenant: t.log.Tenant, Thread: t.log.Thread}
			for rec, e := range l.Tail(ctx, key, cursor) {
				if err = e; err != nil {
					break
				}
				t.deliver(t.log.Thread, rec)
			}
		}
		if err != nil && ctx.Err() == nil {
			var corrupt *sessionlog.CorruptEventError
			if errors.As(err, &corrupt) {
				skip = max(skip, corrupt.Ordinal)
			}
			log.Warn("tail yielded an error; resuming after its last ordinal", "tail", t.log.Name, "after", max(t.top.Load(), skip), "err", err)
			t.mu.Lock()
			t.log.Errors = append(t.log.Errors, err.Error())
			t.mu.Unlock()
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
}

func (t *tailer) deliver(thread string, rec sessionlog.Record) {
	d := delivery{Ordinal: rec.Ordinal, Thread: thread, ID: rec.ID, Token: tokenOf(rec.Data), At: time.Now()}
	t.mu.Lock()
	t.log.Deliveries = append(t.log.Deliveries, d)
	t.mu.Unlock()
	if rec.Ordinal > t.top.Load() {
		t.top.Store(rec.Ordinal)
	}
}

// faultProbes times, right after a fault, a raw publish retried every
// 10 ms and (with --create-probe) the creation of a new tenant's stream.
// They run in the background; stopAppends waits for them.
func (w *workload) faultProbes(f *fault) {
	var serving []int
	for i, n := range w.cl.nodes {
		if n.serving() {
			serving = append(serving, i)
		}
	}
	pick := func(k int) int {
		if len(serving) == 0 {
			return k % len(w.cl.nodes)
		}
		return serving[k%len(serving)]
	}
	for k, tenant := range f.Led {
		node := pick(k)
		w.probes.Go(func() {
			o := w.rawAppend(w.rawConns[node], f, tenant)
			w.record(o)
			w.logProbe("raw publish", f, o, w.cl.nodes[node].name)
		})
	}
	if w.cfg.CreateProbe {
		f.Created = fmt.Sprintf("new-%03d", f.N)
		node := pick(f.N)
		w.probes.Go(func() {
			o, events := w.newOp("create", f.N, f.Created, "t0", 1)
			o.Fault = f.N
			w.appendOp(context.Background(), w.nodeLogs[node], o, events)
			w.record(o)
			w.logProbe("stream creation", f, o, w.cl.nodes[node].name)
		})
	}
}

// logProbe logs how a fault probe ended, with its distinct errors.
func (w *workload) logProbe(what string, f *fault, o *op, via string) {
	seen := map[string]int{}
	var kinds []string
	for _, e := range o.Errors {
		k := errorKind(errors.New(e))
		if seen[k] == 0 {
			kinds = append(kinds, k)
		}
		seen[k]++
	}
	attrs := []any{"fault", f.N, "tenant", o.Tenant, "via", via, "attempts", o.Attempts}
	if o.Outcome == outcomeAcked {
		attrs = append(attrs, "after", o.End.Sub(f.At).Round(time.Millisecond))
	} else {
		attrs = append(attrs, "after", "never")
	}
	if len(kinds) > 0 {
		attrs = append(attrs, "errors", strings.Join(kinds, " | "))
	}
	w.log.Info(what+" probe", attrs...)
}

// rawAppend publishes one event with a plain NATS request, in the wire
// format the README documents, every 10 ms (each waiting 500 ms at most)
// with the same message ID until it is acknowledged: how soon raw
// JetStream accepts writes again, to compare the library with.
func (w *workload) rawAppend(nc *nats.Conn, f *fault, tenant string) *op {
	o, events := w.newOp("raw-"+tenant, f.N, tenant, rawThread, 1)
	o.Raw, o.Fault = true, f.N
	id := nuid.Next()
	o.Events[0].ID = id
	msg := &nats.Msg{
		Subject: w.nodeLogs[0].Scheme().Subject(tenant, rawThread),
		Header: nats.Header{
			jetstream.HeaderMsgID: []string{jetstream.MsgID(rawThread, id)},
			jetstream.HeaderType:  []string{eventType},
		},
		Data: events[0].Data,
	}
	o.Start = time.Now()
	deadline := o.Start.Add(w.cfg.OpTimeout)
	for time.Now().Before(deadline) {
		o.Attempts++
		reply, err := nc.RequestMsg(msg, 500*time.Millisecond)
		if err == nil {
			var ack struct {
				Seq   uint64 `json:"seq"`
				Error *struct {
					Description string `json:"description"`
				} `json:"error"`
			}
			switch jerr := json.Unmarshal(reply.Data, &ack); {
			case jerr != nil:
				err = jerr
			case ack.Error != nil:
				err = errors.New(ack.Error.Description)
			case ack.Seq > 0:
				o.Outcome, o.AckOrdinal, o.End = outcomeAcked, ack.Seq, time.Now()
				return o
			}
		}
		if err != nil && (len(o.Errors) == 0 || errorKind(err) != errorKind(errors.New(o.Errors[len(o.Errors)-1]))) && len(o.Errors) < 4*maxOpErrors {
			o.Errors = append(o.Errors, err.Error()) // each change of error
		}
		time.Sleep(10 * time.Millisecond)
	}
	o.End = time.Now()
	return o
}

// history gathers what the workload recorded. Call it once everything has
// stopped.
func (w *workload) history() *history {
	h := &history{Ops: w.ops, Probes: w.probeLog}
	for _, t := range w.tails {
		h.Tails = append(h.Tails, t.log)
	}
	return h
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
