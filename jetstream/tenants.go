package jetstream

import (
	"context"
	"fmt"
	"time"
)

// TenantInfo describes one tenant stream.
type TenantInfo struct {
	Tenant string
	Stream string
	// Events is how many live events the tenant holds, over all threads.
	Events uint64
	Bytes  uint64
	// FirstOrdinal and LastOrdinal bound the tenant's sequence; LastOrdinal
	// is the highest ordinal ever assigned, even if archived.
	FirstOrdinal uint64
	LastOrdinal  uint64
	Threads      uint64
	Created      time.Time
	Replicas     int
}

// Tenants lists the tenant streams of the Log's scheme, in the server's
// order. Streams whose names do not decode are left out.
func (l *Log) Tenants(ctx context.Context) ([]TenantInfo, error) {
	var out []TenantInfo
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
			out = append(out, TenantInfo{
				Tenant: tenant, Stream: s.Config.Name, Events: s.State.Msgs, Bytes: s.State.Bytes,
				FirstOrdinal: s.State.FirstSeq, LastOrdinal: s.State.LastSeq, Threads: s.State.NumSubjects,
				Created: s.Created, Replicas: max(s.Config.Replicas, 1),
			})
		}
		offset += len(resp.Streams)
		if len(resp.Streams) == 0 || offset >= resp.Total {
			return out, nil
		}
	}
}
