package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// pollEvery is how often the injector asks the servers who leads.
const pollEvery = 50 * time.Millisecond

// injector runs the fault schedule against the cluster.
type injector struct {
	cfg     config
	cl      *cluster
	log     *slog.Logger
	rng     *rand.Rand
	tenants []string
	streams map[string]string // stream name -> tenant
	// onFault is called right after each fault took effect.
	onFault func(*fault)
	// clients returns the workload's connections a client fault drops.
	clients func() []*nats.Conn
}

// plan is the fault schedule: every kind as often as configured, in a
// seeded random order, never a cluster kill first (the workload should
// have history to lose by then).
func (inj *injector) plan() []faultKind {
	var p []faultKind
	for range inj.cfg.Kills {
		p = append(p, faultLeaderKill)
	}
	for range inj.cfg.Pauses {
		p = append(p, faultPause)
	}
	for range inj.cfg.ClusterKills {
		p = append(p, faultClusterKill)
	}
	for range inj.cfg.ClientFaults {
		p = append(p, faultClientReconnect)
	}
	inj.rng.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
	if len(p) > 1 && p[0] == faultClusterKill {
		i := slices.IndexFunc(p, func(k faultKind) bool { return k != faultClusterKill })
		if i > 0 {
			p[0], p[i] = p[i], p[0]
		}
	}
	return p
}

// run injects the planned faults, spread over --duration: each one in its
// own slot, waiting for the cluster to heal before the next. A fault that
// takes longer than its slot delays the next; once --duration plus
// --heal-timeout has passed, the remaining faults are skipped, so the
// phase is bounded whatever the cluster does.
func (inj *injector) run(ctx context.Context) []*fault {
	plan := inj.plan()
	if len(plan) == 0 {
		sleepCtx(ctx, inj.cfg.Duration)
		return nil
	}
	slot := inj.cfg.Duration / time.Duration(len(plan))
	start := time.Now()
	end, limit := start.Add(inj.cfg.Duration), start.Add(inj.cfg.Duration+inj.cfg.HealTimeout)
	var faults []*fault
	offset := inj.rng.IntN(len(inj.tenants)) // targets take turns from here
	for i, kind := range plan {
		if ctx.Err() != nil {
			break
		}
		if time.Now().After(limit) {
			inj.log.Warn("out of time (--duration plus --heal-timeout); skipping the remaining faults", "done", i, "planned", len(plan))
			break
		}
		target := inj.tenants[(i+offset)%len(inj.tenants)]
		f := &fault{N: i + 1, Kind: kind, Target: target, Elections: map[string]time.Duration{}}
		var err error
		switch kind {
		case faultLeaderKill:
			err = inj.leaderKill(ctx, f)
		case faultPause:
			err = inj.pause(ctx, f)
		case faultClusterKill:
			err = inj.clusterKill(ctx, f)
		case faultClientReconnect:
			err = inj.clientReconnect(ctx, f)
		}
		if err != nil {
			inj.log.Warn("fault not injected", "n", f.N, "kind", kind, "err", err)
			continue
		}
		faults = append(faults, f)
		inj.logFault(f, len(plan))
		slotEnd := start.Add(time.Duration(i+1) * slot)
		if d := time.Until(minTime(slotEnd, end)); d > 0 {
			sleepCtx(ctx, d)
		}
	}
	return faults
}

func (inj *injector) logFault(f *fault, planned int) {
	if f.Kind == faultClientReconnect {
		inj.log.Info(fmt.Sprintf("fault %d/%d %s", f.N, planned, f.Kind), "dropped", f.Dropped,
			"reconnected", f.Reconnected, "on_another_node", f.OtherNode, "all_back_after", f.Healed.Sub(f.At).Round(time.Millisecond))
		return
	}
	attrs := []any{"node", f.Node, "led", f.Led, "meta_leader", f.MetaLeader}
	for _, t := range f.Led {
		if d, ok := f.Elections[t]; ok {
			attrs = append(attrs, "election "+t, d.Round(time.Millisecond))
		} else {
			attrs = append(attrs, "election "+t, "none seen")
		}
	}
	if f.MetaLeader {
		attrs = append(attrs, "meta_election", f.MetaElection.Round(time.Millisecond))
	}
	if !f.Healthy.IsZero() {
		attrs = append(attrs, "healthy_after", f.Healthy.Sub(f.At).Round(time.Millisecond))
	} else {
		attrs = append(attrs, "healthy_after", "never")
	}
	inj.log.Info(fmt.Sprintf("fault %d/%d %s", f.N, planned, f.Kind), attrs...)
}

// leaderOf waits until a serving node leads the tenant's stream.
func (inj *injector) leaderOf(ctx context.Context, tenant string) (string, error) {
	stream := inj.streamOf(tenant)
	ctx, cancel := context.WithTimeout(ctx, inj.cfg.HealTimeout)
	defer cancel()
	for {
		leaders, _ := inj.cl.leaders(ctx)
		if c, ok := leaders[stream]; ok {
			return c.node, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no leader of %s within %v", stream, inj.cfg.HealTimeout)
		case <-time.After(pollEvery):
		}
	}
}

func (inj *injector) streamOf(tenant string) string {
	for s, t := range inj.streams {
		if t == tenant {
			return s
		}
	}
	return ""
}

// aim records which tenant streams node leads and whether it leads the
// meta layer.
func (inj *injector) aim(ctx context.Context, f *fault, node string) {
	leaders, meta := inj.cl.leaders(ctx)
	for _, t := range inj.tenants {
		if leaders[inj.streamOf(t)].node == node {
			f.Led = append(f.Led, t)
		}
	}
	f.MetaLeader = meta == node
}

func (inj *injector) leaderKill(ctx context.Context, f *fault) error {
	name, err := inj.leaderOf(ctx, f.Target)
	if err != nil {
		return err
	}
	n := inj.cl.node(name)
	f.Node = name
	inj.aim(ctx, f, name)
	if err := n.kill(); err != nil {
		return err
	}
	f.At = time.Now()
	inj.onFault(f)
	healed := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { inj.watchElections(ctx, f, "", healed) })
	sleepCtx(ctx, inj.cfg.Down)
	if err := n.start(); err != nil {
		close(healed)
		wg.Wait()
		return fmt.Errorf("restarting %s: %w", name, err)
	}
	f.Healed = time.Now()
	inj.heal(ctx, f)
	close(healed)
	wg.Wait()
	return nil
}

func (inj *injector) pause(ctx context.Context, f *fault) error {
	name, err := inj.leaderOf(ctx, f.Target)
	if err != nil {
		return err
	}
	n := inj.cl.node(name)
	f.Node = name
	inj.aim(ctx, f, name)
	if err := n.pause(); err != nil {
		return err
	}
	f.At = time.Now()
	inj.onFault(f)
	healed := make(chan struct{})
	var wg sync.WaitGroup
	// A paused leader that comes back believes it still leads until it
	// hears of a newer term: only the other nodes' claims count.
	wg.Go(func() { inj.watchElections(ctx, f, name, healed) })
	sleepCtx(ctx, inj.cfg.PauseFor)
	err = n.resume()
	f.Healed = time.Now()
	if err == nil {
		inj.heal(ctx, f)
	}
	close(healed)
	wg.Wait()
	return err
}

func (inj *injector) clusterKill(ctx context.Context, f *fault) error {
	f.Node = "all"
	f.Led = slices.Clone(inj.tenants)
	f.MetaLeader = true
	var errs []error
	for _, n := range inj.cl.nodes {
		errs = append(errs, n.kill())
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	f.At = time.Now()
	inj.onFault(f)
	sleepCtx(ctx, inj.cfg.Down)
	for _, n := range inj.cl.nodes {
		errs = append(errs, n.start())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("restarting the cluster: %w", err)
	}
	f.Healed = time.Now()
	healed := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { inj.watchElections(ctx, f, "", healed) })
	inj.heal(ctx, f)
	close(healed)
	wg.Wait()
	return nil
}

// clientReconnect drops every client connection of the workload at the
// same instant, as a process losing its network would: appends and atomic
// batches in flight lose their connection, what they had buffered goes out
// after the reconnect, and tails lose their subscriptions until then. Each
// connection reconnects to the next node of its list (nats.go moves the
// node it lost to the end), so most come back on another node. Healed is
// when every connection is back.
func (inj *injector) clientReconnect(ctx context.Context, f *fault) error {
	f.Node = "clients"
	f.Led = slices.Clone(inj.tenants) // every tenant's appends and tails are hit
	conns := inj.clients()
	before := make([]string, len(conns))
	for i, nc := range conns {
		before[i] = nc.ConnectedUrl()
	}
	var errs []error
	for _, nc := range conns {
		if err := nc.ForceReconnect(); err != nil {
			errs = append(errs, err)
		} else {
			f.Dropped++
		}
	}
	if err := errors.Join(errs...); err != nil && f.Dropped == 0 {
		return err
	}
	f.At = time.Now()
	inj.onFault(f)
	deadline := time.Now().Add(inj.cfg.HealTimeout)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		back := 0
		for _, nc := range conns {
			if nc.IsConnected() {
				back++
			}
		}
		if back == len(conns) {
			break
		}
		sleepCtx(ctx, pollEvery)
	}
	f.Healed = time.Now()
	for i, nc := range conns {
		if nc.IsConnected() {
			f.Reconnected++
			if nc.ConnectedUrl() != before[i] {
				f.OtherNode++
			}
		}
	}
	if f.Reconnected < len(conns) {
		inj.log.Warn("client connections did not all come back", "fault", f.N, "back", f.Reconnected, "dropped", len(conns))
		return nil
	}
	f.Healthy = f.Healed
	return nil
}

// heal waits until the cluster is healthy again.
func (inj *injector) heal(ctx context.Context, f *fault) {
	if err := inj.cl.waitHealthy(ctx, inj.cfg.HealTimeout); err != nil {
		inj.log.Warn("the cluster did not heal", "fault", f.N, "err", err)
		return
	}
	f.Healthy = time.Now()
}

// watchElections records, for each stream the faulted node led, when a
// node first claimed its leadership since the fault (a leader_since after
// it), and when a serving node other than exclude claimed the meta
// leadership. It stops when every election was seen; once healed is
// closed, also when the streams still pending are led by a leader from
// before the fault (a pause too short for an election); and at the latest
// --heal-timeout after healed.
func (inj *injector) watchElections(ctx context.Context, f *fault, exclude string, healed <-chan struct{}) {
	pending := map[string]string{} // stream -> tenant
	for _, t := range f.Led {
		pending[inj.streamOf(t)] = t
	}
	meta := f.MetaLeader
	var deadline <-chan time.Time
	for {
		leaders, metaLeader := inj.cl.leaders(ctx)
		now := time.Now()
		unchanged := 0
		for s, t := range pending {
			c, ok := leaders[s]
			switch {
			case ok && c.since.After(f.At):
				f.Elections[t] = now.Sub(f.At)
				delete(pending, s)
			case ok:
				unchanged++
			}
		}
		if meta && metaLeader != "" && metaLeader != exclude {
			f.MetaElection = now.Sub(f.At)
			meta = false
		}
		isHealed := false
		select {
		case <-healed:
			isHealed = true
		default:
		}
		switch {
		case len(pending) == 0 && !meta, ctx.Err() != nil:
			return
		case isHealed && unchanged == len(pending) && !meta:
			return // the old leaders lead on: no election
		}
		if isHealed && deadline == nil {
			deadline = time.After(inj.cfg.HealTimeout)
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline:
			inj.log.Warn("no new leader seen", "fault", f.N, "streams", len(pending), "meta", meta)
			return
		case <-time.After(pollEvery):
		}
	}
}
