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
package sessionlogtest

import (
	"testing"

	"github.com/jetsession/jetsession/sessionlog"
)

// Factory returns a fresh, empty log for one subtest.
type Factory func(t *testing.T) sessionlog.Log

type rule struct {
	name string
	run  func(t *testing.T, log sessionlog.Log)
}

// Run runs every rule of the contract against logs from newLog.
func Run(t *testing.T, newLog Factory) {
	t.Helper()
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
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, r := range g.rules {
				t.Run(r.name, func(t *testing.T) {
					r.run(t, newLog(t))
				})
			}
		})
	}
}
