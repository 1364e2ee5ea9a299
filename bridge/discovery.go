package bridge

import "context"

// streamHead is what discovery learns of a tenant stream.
type streamHead struct {
	tenant  string
	lastSeq uint64
	events  uint64
}

func (b *Bridge) listStreams(ctx context.Context) ([]streamHead, error) {
	tenants, err := b.cfg.Log.Tenants(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]streamHead, len(tenants))
	for i, t := range tenants {
		out[i] = streamHead{tenant: t.Tenant, lastSeq: t.LastOrdinal, events: t.Events}
	}
	return out, nil
}
