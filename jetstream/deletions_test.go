package jetstream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/stretchr/testify/require"
)

func tenantDeletions(t *testing.T, l *jetstream.Log) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for d, err := range l.TenantDeletions(ctx(t)) {
		require.NoError(t, err)
		out[d.Tenant] = d.Before
	}
	return out
}

func TestTenantDeletionsYieldEveryDeletedTenant(t *testing.T) {
	srv := testserver.Start(t)
	l, err := jetstream.New(srv.Connect(t), jetstream.WithScheme(freshScheme()))
	require.NoError(t, err)
	require.Empty(t, tenantDeletions(t, l), "no tenant was ever deleted")
	lasts := map[string]uint64{}
	for _, tenant := range []string{"acme", "globex", "Init.Tech"} {
		last, err := l.Append(ctx(t), sessionlog.ThreadKey{Tenant: tenant, Thread: "t"}, events(3))
		require.NoError(t, err)
		require.NoError(t, l.DeleteTenant(ctx(t), tenant))
		lasts[tenant] = last
	}
	got := tenantDeletions(t, l)
	require.Len(t, got, 3)
	for tenant, last := range lasts {
		require.Equal(t, last+1, got[tenant], tenant)
		d, err := l.DeletedLastOrdinal(ctx(t), tenant)
		require.NoError(t, err)
		require.Equal(t, last, d)
		// A tenant created again numbers on after its deleted self.
		again, err := l.Append(ctx(t), sessionlog.ThreadKey{Tenant: tenant, Thread: "t"}, events(1))
		require.NoError(t, err)
		require.Equal(t, last+1, again, tenant)
	}
}

// TestATailIgnoresAConsumerAimedAtItsInbox: whoever may create consumers
// can aim one at a tail's inbox (the deliver subject is any subject its
// creator names). Its deliveries carry their own stream and sequences: a
// tail that took them would yield another tenant's message and skip its
// own events up to that sequence.
func TestATailIgnoresAConsumerAimedAtItsInbox(t *testing.T) {
	srv := testserver.Start(t)
	nc := srv.Connect(t)
	l, err := jetstream.New(nc, jetstream.WithScheme(freshScheme()))
	require.NoError(t, err)
	k := sessionlog.ThreadKey{Tenant: "acme", Thread: "watched"}
	first, err := l.Append(ctx(t), k, events(1))
	require.NoError(t, err)
	stream := l.Scheme().Stream(k.Tenant)

	tctx, stop := context.WithCancel(ctx(t))
	defer stop()
	type item struct {
		rec sessionlog.Record
		err error
	}
	out := make(chan item, 16)
	go func() {
		defer close(out)
		for rec, err := range l.Tail(tctx, k, first) {
			out <- item{rec, err}
		}
	}()
	// Find the tail's deliver subject and aim a consumer of the whole
	// stream, from its start, at it.
	var deliver string
	testserver.Eventually(t, 10*time.Second, func() error {
		msg, err := nc.Request("$JS.API.CONSUMER.LIST."+stream, nil, time.Second)
		if err != nil {
			return err
		}
		var list struct {
			Consumers []struct {
				Config struct {
					DeliverSubject string `json:"deliver_subject"`
				} `json:"config"`
			} `json:"consumers"`
		}
		if err := json.Unmarshal(msg.Data, &list); err != nil || len(list.Consumers) != 1 {
			return fmt.Errorf("consumers: %s", msg.Data)
		}
		deliver = list.Consumers[0].Config.DeliverSubject
		return nil
	})
	// The intruder reads another tenant's stream, further along.
	other := sessionlog.ThreadKey{Tenant: "other", Thread: "t"}
	_, err = l.Append(ctx(t), other, events(20))
	require.NoError(t, err)
	otherStream := l.Scheme().Stream(other.Tenant)
	req, _ := json.Marshal(map[string]any{"stream_name": otherStream, "config": map[string]any{
		"name": "intruder", "deliver_subject": deliver, "deliver_policy": "last", "ack_policy": "none"}})
	reply, err := nc.Request("$JS.API.CONSUMER.CREATE."+otherStream+".intruder", req, 5*time.Second)
	require.NoError(t, err)
	require.NotContains(t, string(reply.Data), `"error"`)

	live, err := l.Append(ctx(t), k, events(1))
	require.NoError(t, err)
	select {
	case it := <-out:
		require.NoError(t, it.err, "the intruder's message was yielded")
		require.Equal(t, live, it.rec.Ordinal)
	case <-time.After(10 * time.Second):
		t.Fatal("the tail yielded nothing: the intruder's sequence moved it past the live event")
	}
}
