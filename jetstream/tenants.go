package jetstream

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats.go"
)

var _ sessionlog.TenantReader = (*Log)(nil)

// Tenants implements sessionlog.TenantReader: it lists the tenant streams
// of the Log's scheme, in the server's order, with the server's counts.
// Streams whose names do not decode to a valid tenant are left out.
func (l *Log) Tenants(ctx context.Context) ([]sessionlog.TenantInfo, error) {
	var out []sessionlog.TenantInfo
	offset := 0
	for {
		var resp struct {
			Total   int `json:"total"`
			Offset  int `json:"offset"`
			Limit   int `json:"limit"`
			Streams []struct {
				Created time.Time `json:"created"`
				Config  struct {
					Name     string `json:"name"`
					Replicas int    `json:"num_replicas"`
				} `json:"config"`
				State struct {
					Msgs        uint64 `json:"messages"`
					Bytes       uint64 `json:"bytes"`
					FirstSeq    uint64 `json:"first_seq"`
					LastSeq     uint64 `json:"last_seq"`
					NumSubjects uint64 `json:"num_subjects"`
				} `json:"state"`
			} `json:"streams"`
		}
		req := map[string]any{"offset": offset, "subject": l.cfg.scheme.AllTenantsFilter()}
		if err := l.apiRequest(ctx, "STREAM.LIST", req, &resp); err != nil {
			return nil, fmt.Errorf("jetstream: listing tenant streams: %w", err)
		}
		for _, s := range resp.Streams {
			tenant, err := l.cfg.scheme.ParseStream(s.Config.Name)
			if err != nil {
				continue
			}
			first := s.State.FirstSeq
			if s.State.Msgs == 0 {
				first = 0
			}
			out = append(out, sessionlog.TenantInfo{
				Tenant: tenant, Events: s.State.Msgs, Bytes: s.State.Bytes, Threads: s.State.NumSubjects,
				FirstOrdinal: first, LastOrdinal: s.State.LastSeq,
				Created: s.Created, Replicas: max(s.Config.Replicas, 1),
			})
		}
		offset += len(resp.Streams)
		if len(resp.Streams) == 0 || offset >= resp.Total {
			return out, nil
		}
	}
}

// WatchTenants calls changed soon after a tenant stream of the Log's
// scheme is created, from the server's stream-creation advisories, until
// ctx ends or stop is called. Callers still list tenants now and then:
// advisories are not delivered where the account cannot subscribe to them.
func (l *Log) WatchTenants(ctx context.Context, changed func()) (stop func(), err error) {
	prefix := "$JS.EVENT.ADVISORY.STREAM.CREATED."
	sub, err := l.nc.Subscribe(prefix+"*", func(m *nats.Msg) {
		if strings.HasPrefix(strings.TrimPrefix(m.Subject, prefix), l.cfg.scheme.StreamPrefix) {
			changed()
		}
	})
	if err != nil {
		return nil, fmt.Errorf("jetstream: watching for new tenant streams: %w", err)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
		}
		sub.Unsubscribe()
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }, nil
}

// Connected reports whether the Log's connection to NATS is up.
func (l *Log) Connected() bool { return l.nc.IsConnected() }
