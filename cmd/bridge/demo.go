package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
)

// runDemo plays a small agent fleet: a few tenants, each with a few
// conversation threads, appending the events an agent runtime records
// (messages, tool calls and results, errors, hand-offs) until ctx ends.
func runDemo(ctx context.Context, log *jetstream.Log, logger *slog.Logger) {
	tenants := []string{"acme", "globex", "initech"}
	tools := []string{"search_orders", "refund", "lookup_customer", "send_email", "query_kb"}
	logger.Info("demo fleet started", "tenants", tenants, "threads_per_tenant", 3)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	turn := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(150+rng.IntN(250)) * time.Millisecond):
		}
		turn++
		tenant := tenants[rng.IntN(len(tenants))]
		key := sessionlog.ThreadKey{Tenant: tenant, Thread: fmt.Sprintf("conversation-%d", 1+rng.IntN(3))}
		tool := tools[rng.IntN(len(tools))]
		events := []sessionlog.Event{
			{Type: "user_message", Data: fmt.Appendf(nil, `{"role":"user","text":"request #%d: please help with %s"}`, turn, tool)},
			{Type: "tool_call", Data: fmt.Appendf(nil, `{"tool":%q,"args":{"id":%d}}`, tool, rng.IntN(10000)),
				Meta: map[string]string{"model": "demo-model-1"}},
		}
		if rng.IntN(8) == 0 {
			events = append(events, sessionlog.Event{Type: "error",
				Data: fmt.Appendf(nil, `{"tool":%q,"error":"upstream timeout","retryable":true}`, tool)})
		} else {
			events = append(events, sessionlog.Event{Type: "tool_result",
				Data: fmt.Appendf(nil, `{"tool":%q,"ok":true,"latency_ms":%d}`, tool, 20+rng.IntN(400))})
		}
		events = append(events, sessionlog.Event{Type: "model_reply",
			Data: fmt.Appendf(nil, `{"role":"assistant","text":"done","tokens_in":%d,"tokens_out":%d,"cost_usd":%.5f}`,
				200+rng.IntN(2000), 20+rng.IntN(400), rng.Float64()/100),
			Meta: map[string]string{"model": "demo-model-1"}})
		if rng.IntN(20) == 0 {
			events = append(events, sessionlog.Event{Type: "handoff", Data: []byte(`{"to":"human-support"}`)})
		}
		if _, err := log.Append(ctx, key, events); err != nil && ctx.Err() == nil {
			logger.Warn("demo append failed", "err", err)
		}
	}
}
