package main

import (
	"encoding/json"
	"time"
)

// The history is everything the workload and the faults did and saw, as
// plain values: the checker works on it alone, so its tests build
// histories by hand.
type history struct {
	Ops    []*op
	Tails  []*tailLog
	Probes []probe
	Faults []*fault
	// Final is every thread's content read after the run, by tenant and
	// thread; Unreadable lists threads that could not be read.
	Final      map[string]map[string][]stored
	Unreadable []string
}

// outcome is what a writer knows of one append in the end.
type outcome int

const (
	// outcomeUnknown: no attempt was acknowledged (timeouts, errors, the run
	// ended): the events may or may not be stored, but must be all or none.
	outcomeUnknown outcome = iota
	// outcomeAcked: an attempt returned the last ordinal; every event must
	// be stored.
	outcomeAcked
)

// op is one logical append of one or more events, and its retries with
// the same event IDs.
type op struct {
	Writer string
	Tenant string
	Thread string
	Events []eventRef
	// Start is when the first attempt began, End when the outcome became
	// definite (the acknowledgement) or the writer gave up.
	Start, End time.Time
	Outcome    outcome
	// AckOrdinal is the last ordinal the acknowledged attempt returned.
	AckOrdinal uint64
	Attempts   int
	// Errors are the failed attempts' errors (the first few).
	Errors []string
	// Raw marks an op published with a plain NATS request rather than the
	// library (the raw recovery probe).
	Raw bool
	// Fault is the number of the fault a probe op was started for (0 for
	// the workload's own appends).
	Fault int
}

// failed reports whether any attempt of the op failed.
func (o *op) failed() bool { return o.Attempts > 1 || (o.Outcome != outcomeAcked && o.Attempts > 0) }

// eventRef identifies one event of an op: its ID as stored and the token
// its payload carries.
type eventRef struct {
	ID    string
	Token string
}

// stored is one record of the final read.
type stored struct {
	Ordinal uint64
	ID      string
	Token   string // from the payload; "" when it does not decode
}

// payload is what every event of the workload carries.
type payload struct {
	Token string `json:"token"`
	Pad   string `json:"pad,omitempty"`
}

// tokenOf returns the token of an event payload, or "".
func tokenOf(data []byte) string {
	var p payload
	if json.Unmarshal(data, &p) != nil {
		return ""
	}
	return p.Token
}

// tailLog is what one live tail delivered.
type tailLog struct {
	Name   string
	Conn   string // its connection's name
	Tenant string
	Thread string // "" for a tenant-wide tail
	Cursor uint64 // where it started
	// Deliveries are in the order the tail yielded them.
	Deliveries []delivery
	// Errors are errors the tail yielded (it is restarted after the last
	// delivery each time).
	Errors []string
}

// delivery is one record a tail yielded.
type delivery struct {
	Ordinal uint64
	Thread  string
	ID      string
	Token   string
	At      time.Time
}

// probe is one read-your-writes check: an event appended through one
// node, its acknowledgement, then a read through another.
type probe struct {
	Tenant, Thread string
	Ordinal        uint64
	ID             string
	AckAt          time.Time
	// Found is whether the first successful read after the
	// acknowledgement returned the event; Got is what it returned first.
	Found bool
	Got   string
	// ReadErrors counts failed reads before the successful one; Unread
	// marks a probe no read succeeded for.
	ReadErrors int
	Unread     bool
}

// faultKind names the faults the command injects.
type faultKind string

const (
	faultLeaderKill  faultKind = "leader-kill"
	faultPause       faultKind = "pause"
	faultClusterKill faultKind = "cluster-kill"
	// faultClientReconnect drops every client connection of the workload
	// at once (writers mid-append and mid-batch, tails mid-delivery) and
	// lets each reconnect to the next node of its list: a fault of the
	// process holding the Logs, not of the servers.
	faultClientReconnect faultKind = "client-reconnect"
)

// fault is one injected fault and what the cluster did about it.
type fault struct {
	N    int       `json:"n"`
	Kind faultKind `json:"kind"`
	// Node is the node killed or paused ("all" for a cluster kill).
	Node string `json:"node"`
	// Target is the tenant whose stream leader was aimed at.
	Target string `json:"target,omitempty"`
	// At is when the fault took effect: the killed process was reaped, or
	// the SIGSTOP sent. Healed is when the node was restarted or continued.
	At     time.Time `json:"at"`
	Healed time.Time `json:"healed"`
	// Led is every tenant whose stream the node led at the fault, and
	// MetaLeader whether it led the meta layer.
	Led        []string `json:"led,omitempty"`
	MetaLeader bool     `json:"meta_leader,omitempty"`
	// Elections is, per tenant of Led, the time from At until another
	// node claimed the stream's leadership; MetaElection likewise for the
	// meta layer. Missing entries were not seen within the wait.
	Elections    map[string]time.Duration `json:"elections_ns,omitempty"`
	MetaElection time.Duration            `json:"meta_election_ns,omitempty"`
	// Healthy is when every node answered /healthz again (zero if never).
	Healthy time.Time `json:"healthy"`
	// Reconnected is, for a client fault, how many connections were
	// dropped and how many came back on another node than before.
	Dropped     int `json:"dropped,omitempty"`
	OtherNode   int `json:"other_node,omitempty"`
	Reconnected int `json:"reconnected,omitempty"`
	// Created is the tenant whose stream creation was tried during the
	// fault ("" if none).
	Created string `json:"created,omitempty"`

	// Recovery and CreationMs are filled in by the report: per tenant of
	// Led, how soon each side worked again; CreationMs is how long the
	// creation of Created took (-1: never).
	Recovery   []recovery `json:"recovery,omitempty"`
	CreationMs float64    `json:"creation_ms,omitempty"`
	// API is what the servers' advisories tell of the fault.
	API *faultAPI `json:"api,omitempty"`
}

// recovery is how soon, after a fault, one tenant worked again, in
// milliseconds from the fault (-1: not before the next fault).
type recovery struct {
	Tenant     string  `json:"tenant"`
	ElectionMs float64 `json:"election_ms"`
	RawMs      float64 `json:"raw_publish_ms"`
	AppendMs   float64 `json:"append_ms"`
	// TailsMs is, per tail of the tenant, its first delivery after the
	// fault; ConsumersMs when the servers answered the first consumer it
	// created after the fault (-1: it made none, its consumer survived).
	TailsMs     []float64 `json:"tails_ms"`
	ConsumersMs []float64 `json:"consumers_ms"`
}
