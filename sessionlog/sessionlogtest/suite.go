// Package sessionlogtest is the conformance suite every sessionlog.Log
// backend must pass. A backend's test calls Run with a factory:
//
//	func TestConformance(t *testing.T) {
//		sessionlogtest.Run(t, func(t *testing.T) sessionlog.Log { return newLog(t) })
//	}
//
// Each rule of the contract is a named subtest run on a fresh log from the
// factory. The factory must return a log with the default limits and
// duplicate window, whose storage is empty (backends sharing a server give
// each log its own names).
//
// The rules for messages that do not follow the protocol need a way to
// store one, as a foreign writer would: pass WithCorrupter. Without it
// those rules are skipped, saying so.
//
// The rules of the cold tier (archiving moves events there, reads with
// sessionlog.IncludeArchived go through it) need logs configured with a
// cold store, each with its own empty one: pass WithColdTier. Without it
// those rules are skipped, saying so.
//
// The snapshot rules run on logs that implement sessionlog.Snapshotter
// (the memory log and JetStream do) and are skipped, saying so, on others.
package sessionlogtest

import (
	"testing"

	"github.com/jetsession/jetsession/sessionlog"
)

// Factory returns a fresh, empty log for one subtest.
type Factory func(t *testing.T) sessionlog.Log

// Corrupter stores on the thread key of log (made by the factory) one
// message that is not a valid event, the way a writer that ignores the
// protocol could, and returns its ordinal.
type Corrupter func(t *testing.T, log sessionlog.Log, key sessionlog.ThreadKey) uint64

// Option configures Run.
type Option func(*options)

type options struct {
	corrupt Corrupter
	cold    Factory
}

// WithColdTier enables the rules of the cold tier, run on logs from
// newLog, which must be configured with a fresh, empty cold store.
func WithColdTier(newLog Factory) Option { return func(o *options) { o.cold = newLog } }

// WithCorrupter enables the rules on messages that do not follow the
// protocol, storing them with c.
func WithCorrupter(c Corrupter) Option { return func(o *options) { o.corrupt = c } }

type rule struct {
	name string
	run  func(t *testing.T, log sessionlog.Log)
}

// Run runs every rule of the contract against logs from newLog.
func Run(t *testing.T, newLog Factory, opts ...Option) {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	groups := []struct {
		name  string
		rules []rule
	}{
		{"ordinals", ordinalRules},
		{"atomic append", atomicRules},
		{"empty append", emptyAppendRules},
		{"load since", loadRules},
		{"read your writes", readYourWritesRules},
		{"archive", archiveRules},
		{"idempotent retries", idempotencyRules},
		{"optimistic concurrency", expectLastRules},
		{"tenant isolation", isolationRules},
		{"bad input", badInputRules},
		{"head", headRules},
		{"tailing", tailRules},
		{"foreign messages", foreignRules(o.corrupt)},
		{"thread listing", listingRules},
		{"newest first", loadLastRules},
		{"deletion", deletionRules},
		{"retention", retentionRules},
		{"snapshots", snapshotRules},
	}
	cold := coldRules(o.corrupt)
	if o.cold == nil {
		cold = []rule{{"cold tier rules need WithColdTier", func(t *testing.T, _ sessionlog.Log) {
			t.Skip("no cold tier configured: pass sessionlogtest.WithColdTier to run the cold tier rules")
		}}}
	}
	coldLog := o.cold
	if coldLog == nil {
		coldLog = newLog
	}
	groups = append(groups, struct {
		name  string
		rules []rule
	}{"cold tier", cold})
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, r := range g.rules {
				t.Run(r.name, func(t *testing.T) {
					if g.name == "cold tier" {
						r.run(t, coldLog(t))
						return
					}
					r.run(t, newLog(t))
				})
			}
		})
	}
}
