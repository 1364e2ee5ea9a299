package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// advisorySubject is where the servers publish JetStream advisories: API
// audits (one per answered API request, naming the client connection),
// stream leader elections, quorum losses, consumer creations.
const advisorySubject = "$JS.EVENT.ADVISORY.>"

// advisories records the servers' JetStream advisories, to see where the
// library's recovery time goes: which API requests each client made after
// a fault, when the servers answered them, and when a stream leader was
// elected by the servers' own clocks. It listens on one connection per
// node, so a killed node's listener loses nothing, and drops the copies.
type advisories struct {
	mu    sync.Mutex
	seen  map[string]bool
	calls []apiCall
	elect []leaderElected
	types map[string]int
}

// apiCall is one JetStream API request a server answered.
type apiCall struct {
	At     time.Time `json:"at"`
	Server string    `json:"server"`
	Client string    `json:"client"` // the connection name
	Op     string    `json:"op"`     // STREAM.CREATE, CONSUMER.CREATE, ...
	Stream string    `json:"stream,omitempty"`
	Error  int       `json:"error,omitempty"` // the JetStream error code, 0 for success
}

// leaderElected is a stream leader election as a server reported it.
type leaderElected struct {
	At     time.Time
	Stream string
	Leader string
}

func newAdvisories() *advisories {
	return &advisories{seen: map[string]bool{}, types: map[string]int{}}
}

// listen subscribes nc to every advisory.
func (a *advisories) listen(nc *nats.Conn) error {
	_, err := nc.Subscribe(advisorySubject, a.handle)
	if err != nil {
		return fmt.Errorf("subscribing to %s: %w", advisorySubject, err)
	}
	return nc.Flush()
}

func (a *advisories) handle(m *nats.Msg) {
	var ev struct {
		Type     string    `json:"type"`
		ID       string    `json:"id"`
		Time     time.Time `json:"timestamp"`
		Server   string    `json:"server"`
		Subject  string    `json:"subject"`
		Response string    `json:"response"`
		Stream   string    `json:"stream"`
		Leader   string    `json:"leader"`
		Client   *struct {
			Name string `json:"name"`
		} `json:"client"`
	}
	if json.Unmarshal(m.Data, &ev) != nil || ev.ID == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen[ev.ID] {
		return
	}
	a.seen[ev.ID] = true
	a.types[strings.TrimPrefix(ev.Type, "io.nats.jetstream.advisory.v1.")]++
	switch {
	case strings.HasPrefix(m.Subject, "$JS.EVENT.ADVISORY.API"):
		c := apiCall{At: ev.Time, Server: ev.Server}
		if ev.Client != nil {
			c.Client = ev.Client.Name
		}
		c.Op, c.Stream = apiOp(ev.Subject)
		if c.Op == "STREAM.MSG.GET" {
			return // the reads' leader gets: many, and counted in types
		}
		var resp struct {
			Error *struct {
				ErrCode int `json:"err_code"`
			} `json:"error"`
		}
		if json.Unmarshal([]byte(ev.Response), &resp) == nil && resp.Error != nil {
			c.Error = resp.Error.ErrCode
		}
		a.calls = append(a.calls, c)
	case strings.HasPrefix(m.Subject, "$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED."):
		a.elect = append(a.elect, leaderElected{At: ev.Time, Stream: ev.Stream, Leader: ev.Leader})
	}
}

// apiOp splits "$JS.API.CONSUMER.CREATE.stream.name.filter" into
// "CONSUMER.CREATE" and "stream".
func apiOp(subject string) (op, stream string) {
	parts := strings.Split(strings.TrimPrefix(subject, "$JS.API."), ".")
	switch {
	case len(parts) >= 3 && (parts[0] == "STREAM" || parts[0] == "CONSUMER") && parts[1] == "MSG":
		return strings.Join(parts[:3], "."), part(parts, 3)
	case len(parts) >= 2 && (parts[0] == "STREAM" || parts[0] == "CONSUMER"):
		return parts[0] + "." + parts[1], part(parts, 2)
	case len(parts) >= 1:
		return parts[0], ""
	}
	return subject, ""
}

func part(parts []string, i int) string {
	if i < len(parts) {
		return parts[i]
	}
	return ""
}

// snapshot returns what was recorded so far.
func (a *advisories) snapshot() ([]apiCall, []leaderElected, map[string]int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	types := make(map[string]int, len(a.types))
	for k, v := range a.types {
		types[k] = v
	}
	return append([]apiCall(nil), a.calls...), append([]leaderElected(nil), a.elect...), types
}

// faultAPI is what the servers answered between one fault and the next.
type faultAPI struct {
	// StreamCreates counts the answered STREAM.CREATE requests of the
	// workload's tenants (idempotent creates of existing streams that
	// Append sends on "no responders"), by error code ("0" success).
	StreamCreates map[string]int `json:"stream_creates,omitempty"`
	// ConsumerCreates counts the tails' answered CONSUMER.CREATE requests,
	// by error code ("0" success).
	ConsumerCreates map[string]int `json:"consumer_creates,omitempty"`
	// TailConsumerMs is, per tail connection, when the first consumer it
	// created after the fault was answered.
	TailConsumerMs map[string]float64 `json:"tail_consumer_ms,omitempty"`
	// ElectedMs is, per stream, when a server announced its new leader.
	ElectedMs map[string]float64 `json:"elected_ms,omitempty"`
}

// perFault sums up the advisories between each fault and the next.
func (a *advisories) perFault(faults []*fault, tenantStreams map[string]bool) []faultAPI {
	calls, elect, _ := a.snapshot()
	out := make([]faultAPI, len(faults))
	for i, f := range faults {
		next := time.Time{}
		if i+1 < len(faults) {
			next = faults[i+1].At
		}
		in := func(t time.Time) bool { return t.After(f.At) && (next.IsZero() || t.Before(next)) }
		r := faultAPI{StreamCreates: map[string]int{}, ConsumerCreates: map[string]int{}, TailConsumerMs: map[string]float64{}, ElectedMs: map[string]float64{}}
		for _, c := range calls {
			if !in(c.At) {
				continue
			}
			switch {
			case c.Op == "STREAM.CREATE" && tenantStreams[c.Stream]:
				r.StreamCreates[fmt.Sprint(c.Error)]++
			case c.Op == "CONSUMER.CREATE" && strings.HasPrefix(c.Client, "chaos-tail-"):
				r.ConsumerCreates[fmt.Sprint(c.Error)]++
				if _, ok := r.TailConsumerMs[c.Client]; !ok && c.Error == 0 {
					r.TailConsumerMs[c.Client] = ms(c.At.Sub(f.At))
				}
			}
		}
		for _, e := range elect {
			if in(e.At) && tenantStreams[e.Stream] {
				if _, ok := r.ElectedMs[e.Stream]; !ok {
					r.ElectedMs[e.Stream] = ms(e.At.Sub(f.At))
				}
			}
		}
		out[i] = r
	}
	return out
}
