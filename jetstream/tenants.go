package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
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
			Total   int                  `json:"total"`
			Offset  int                  `json:"offset"`
			Limit   int                  `json:"limit"`
			Streams []*natsjs.StreamInfo `json:"streams"`
		}
		req := streamListRequest{Offset: offset, Subject: l.cfg.scheme.AllTenantsFilter()}
		if err := l.apiRequest(ctx, apiStreamList, req, &resp); err != nil {
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
				Tenant: tenant, Events: s.State.Msgs, Bytes: s.State.Bytes, Threads: uint64(s.State.NumSubjects),
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
	sub, err := l.nc.Subscribe(streamCreatedAdvisory+"*", func(m *nats.Msg) {
		if strings.HasPrefix(strings.TrimPrefix(m.Subject, streamCreatedAdvisory), l.cfg.scheme.StreamPrefix) {
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

// Tenant describes one tenant's stream, from its leader; ok is false when
// the tenant has none.
func (l *Log) Tenant(ctx context.Context, tenant string) (info sessionlog.TenantInfo, ok bool, err error) {
	if err := sessionlog.ValidateTenant(tenant); err != nil {
		return info, false, err
	}
	var si natsjs.StreamInfo
	err = l.apiRequest(ctx, apiStreamInfo+"."+l.cfg.scheme.Stream(tenant), nil, &si)
	if errCode(err) == codeStreamNotFound {
		return info, false, nil
	}
	if err != nil {
		return info, false, fmt.Errorf("jetstream: looking up tenant %q: %w", tenant, err)
	}
	first := si.State.FirstSeq
	if si.State.Msgs == 0 {
		first = 0
	}
	return sessionlog.TenantInfo{
		Tenant: tenant, Events: si.State.Msgs, Bytes: si.State.Bytes, Threads: uint64(si.State.NumSubjects),
		FirstOrdinal: first, LastOrdinal: si.State.LastSeq, Created: si.Created, Replicas: max(si.Config.Replicas, 1),
	}, true, nil
}

// Pending returns how many live messages the tenant holds after the
// ordinal after (events, messages that are not valid events and deletion
// records alike): one small direct get. The bridge reports it as its lag.
func (l *Log) Pending(ctx context.Context, tenant string, after uint64) (uint64, error) {
	if err := sessionlog.ValidateTenant(tenant); err != nil {
		return 0, err
	}
	filter := l.cfg.scheme.TenantFilter(tenant)
	found := false
	pending, err := l.directGet(ctx, l.cfg.scheme.Stream(tenant), filter,
		msgGetRequest{Seq: after + 1, NextFor: filter, Batch: 1}, func(*served) error { found = true; return nil })
	if errors.Is(err, errDirectUnavailable) {
		if _, ok, serr := l.streamState(ctx, l.cfg.scheme.Stream(tenant)); serr == nil && !ok {
			return 0, nil
		}
	}
	if err != nil {
		return 0, fmt.Errorf("jetstream: counting the messages of tenant %q after %d: %w", tenant, after, err)
	}
	if !found {
		return 0, nil
	}
	return 1 + pending, nil
}
