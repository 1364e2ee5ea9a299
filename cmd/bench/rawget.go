package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// The raw twins of the lifecycle scenarios send the JetStream API requests
// by hand, as a client in another language would, and decode only what the
// operation needs. They trust every reply: unlike the library they do not
// check that a reply is the server's, nor that a replica is current.

// rawRequest is a raw direct get (JSApiMsgGetRequest).
type rawRequest struct {
	Seq      uint64   `json:"seq,omitempty"`
	LastFor  string   `json:"last_by_subj,omitempty"`
	NextFor  string   `json:"next_by_subj,omitempty"`
	Batch    int      `json:"batch,omitempty"`
	MultiFor []string `json:"multi_last,omitempty"`
	UpToSeq  uint64   `json:"up_to_seq,omitempty"`
}

// rawEOB is what the end of a raw batched direct get says.
type rawEOB struct {
	found   bool   // some message matched
	pending uint64 // matching messages after the last one sent
}

// rawDirectGet sends one batched (or multi_last) direct get and hands each
// message to each, until the server's end of batch.
func (t *target) rawDirectGet(ctx context.Context, stream string, req rawRequest, each func(*nats.Msg) error) (rawEOB, error) {
	call, err := t.rawSend(stream, req)
	if err != nil {
		return rawEOB{}, err
	}
	return call.receive(ctx, each)
}

// rawCall is a direct get sent and not yet read.
type rawCall struct {
	stream string
	sub    *nats.Subscription
}

// rawSend sends a direct get; its replies wait in the returned call.
func (t *target) rawSend(stream string, req rawRequest) (*rawCall, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	inbox := t.nc.NewInbox()
	sub, err := t.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	if err := t.nc.PublishRequest("$JS.API.DIRECT.GET."+stream, inbox, body); err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	return &rawCall{stream: stream, sub: sub}, nil
}

// receive hands each message of the call's reply to each, until the end
// of batch, and closes the call.
func (c *rawCall) receive(ctx context.Context, each func(*nats.Msg) error) (rawEOB, error) {
	defer c.sub.Unsubscribe()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var eob rawEOB
	for {
		m, err := c.sub.NextMsgWithContext(ctx)
		if err != nil {
			return eob, fmt.Errorf("raw direct get of %s: %w", c.stream, err)
		}
		if len(m.Data) == 0 {
			switch m.Header.Get("Status") {
			case "204":
				eob.pending, _ = strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
				return eob, nil
			case "404":
				return eob, nil
			case "":
			default:
				return eob, fmt.Errorf("raw direct get of %s: status %s %s", c.stream, m.Header.Get("Status"), m.Header.Get("Description"))
			}
		}
		eob.found = true
		if err := each(m); err != nil {
			return eob, err
		}
	}
}

// rawSeq is the sequence a direct get reply carries.
func rawSeq(m *nats.Msg) (uint64, error) {
	seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
	if err != nil || seq == 0 {
		return 0, fmt.Errorf("direct get reply without a sequence: %q", m.Header.Get("Nats-Sequence"))
	}
	return seq, nil
}

// rawSubjectCounts is a raw STREAM.INFO with a subjects filter: every
// subject's count (paged by the server above 100,000 subjects).
func (t *target) rawSubjectCounts(ctx context.Context, stream, filter string) (map[string]uint64, error) {
	out := map[string]uint64{}
	for offset := 0; ; {
		body, err := json.Marshal(map[string]any{"subjects_filter": filter, "offset": offset})
		if err != nil {
			return nil, err
		}
		msg, err := t.nc.RequestWithContext(ctx, "$JS.API.STREAM.INFO."+stream, body)
		if err != nil {
			return nil, err
		}
		var resp struct {
			State struct {
				Subjects map[string]uint64 `json:"subjects"`
			} `json:"state"`
			Total int             `json:"total"`
			Error json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(msg.Data, &resp); err != nil {
			return nil, err
		}
		if resp.Error != nil {
			return nil, fmt.Errorf("raw STREAM.INFO of %s: %s", stream, resp.Error)
		}
		for s, n := range resp.State.Subjects {
			out[s] = n
		}
		offset += len(resp.State.Subjects)
		if len(resp.State.Subjects) == 0 || offset >= resp.Total {
			return out, nil
		}
	}
}

// requestCounter counts the JetStream API requests (direct gets included)
// that the target's connection sends, from a connection of its own.
type requestCounter struct {
	nc  *nats.Conn
	sub *nats.Subscription
	t   *target
}

func (t *target) newRequestCounter() (*requestCounter, error) {
	nc, err := nats.Connect(t.nc.ConnectedUrl(), nats.Name("jetsession-bench-counter"))
	if err != nil {
		return nil, err
	}
	sub, err := nc.SubscribeSync("$JS.API.>")
	if err != nil {
		nc.Close()
		return nil, err
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		nc.Close()
		return nil, err
	}
	return &requestCounter{nc: nc, sub: sub, t: t}, nc.Flush()
}

// count runs op and returns how many API requests were sent while it ran.
func (c *requestCounter) count(op func() error) (int, error) {
	if err := c.drain(); err != nil {
		return 0, err
	}
	if err := op(); err != nil {
		return 0, err
	}
	// Everything the target sent before its flush has reached the counter's
	// connection before the counter's own flush returns.
	if err := c.t.nc.Flush(); err != nil {
		return 0, err
	}
	if err := c.nc.Flush(); err != nil {
		return 0, err
	}
	n, _, err := c.sub.Pending()
	if err != nil {
		return 0, err
	}
	return n, c.drain()
}

func (c *requestCounter) drain() error {
	for {
		if _, err := c.sub.NextMsg(0); err != nil {
			if errors.Is(err, nats.ErrTimeout) {
				return nil
			}
			return err
		}
	}
}

func (c *requestCounter) close() { c.nc.Close() }
