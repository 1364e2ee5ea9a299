package jetstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats.go"
)

// snapshotTwin creates a raw stream configured like the tenant's snapshot
// stream but with direct gets allowed, holding a 64 KiB snapshot like the
// library's, and returns a function loading it with one direct get
// (last_by_subj): the read LoadSnapshot could use instead of the leader's
// message get if direct gets were read-your-writes.
func snapshotTwin(b *testing.B, tg *benchTarget, tenant string, state []byte) func() error {
	ctx := context.Background()
	cfg := tg.log.SnapshotStreamConfig(tenant)
	cfg.Name += "-direct"
	cfg.Subjects = []string{"rawsnap." + tg.scheme.StreamPrefix + ".*"}
	cfg.AllowDirect = true
	cfg.Replicas = tg.replicas
	if _, err := tg.js.CreateStream(ctx, cfg); err != nil {
		b.Fatal(err)
	}
	subject := "rawsnap." + tg.scheme.StreamPrefix + ".t"
	testserver.Eventually(b, 30*time.Second, func() error {
		_, err := tg.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Header: nats.Header{"Jetsession-Snapshot-Ordinal": {"1"}}, Data: state})
		return err
	})
	req, _ := json.Marshal(map[string]string{"last_by_subj": subject})
	api := "$JS.API.DIRECT.GET." + cfg.Name
	return func() error {
		m, err := tg.nc.Request(api, req, 5*time.Second)
		if err != nil {
			return err
		}
		if len(m.Data) != len(state) {
			return errors.New("direct get: wrong snapshot")
		}
		return nil
	}
}

// BenchmarkLoadSnapshot compares LoadSnapshot of a 64 KiB snapshot (the
// stream leader's message get, JSON with base64 state) with one direct get
// of the same snapshot from a raw twin stream (any replica answers; not
// read-your-writes on R3, see ANCHORS.md).
//
//	go test ./jetstream -run '^$' -bench LoadSnapshot -benchtime 2000x
func BenchmarkLoadSnapshot(b *testing.B) {
	forEachTarget(b, func(b *testing.B, tg *benchTarget) {
		ctx := context.Background()
		k := sessionlog.ThreadKey{Tenant: "bench", Thread: "t"}
		state := make([]byte, 64<<10)
		last, err := tg.log.Append(ctx, k, []sessionlog.Event{{Type: "warmup"}})
		if err != nil {
			b.Fatal(err)
		}
		if err := tg.log.SaveSnapshot(ctx, k, last, state); err != nil {
			b.Fatal(err)
		}
		raw := snapshotTwin(b, tg, k.Tenant, state)
		pair(b, func() error {
			_, err := tg.log.LoadSnapshot(ctx, k)
			return err
		}, raw)
	})
}

// BenchmarkHydrateFromSnapshot measures the hydration the snapshot is for:
// LoadSnapshot of a 64 KiB snapshot plus LoadSince of the 10 events after
// it, beside the same with the snapshot read by one direct get.
//
//	go test ./jetstream -run '^$' -bench HydrateFromSnapshot -benchtime 2000x
func BenchmarkHydrateFromSnapshot(b *testing.B) {
	forEachTarget(b, func(b *testing.B, tg *benchTarget) {
		ctx := context.Background()
		k := sessionlog.ThreadKey{Tenant: "bench", Thread: "t"}
		state := make([]byte, 64<<10)
		mid, err := tg.log.Append(ctx, k, []sessionlog.Event{{Type: "warmup"}})
		if err != nil {
			b.Fatal(err)
		}
		if err := tg.log.SaveSnapshot(ctx, k, mid, state); err != nil {
			b.Fatal(err)
		}
		for range 10 {
			if _, err := tg.log.Append(ctx, k, []sessionlog.Event{{Type: "user_message", Data: payload512}}); err != nil {
				b.Fatal(err)
			}
		}
		raw := snapshotTwin(b, tg, k.Tenant, state)
		check := func(recs []sessionlog.Record, err error) error {
			if err == nil && len(recs) != 10 {
				err = errors.New("hydration: wrong event count")
			}
			return err
		}
		pair(b, func() error {
			s, err := tg.log.LoadSnapshot(ctx, k)
			if err != nil {
				return err
			}
			return check(tg.log.LoadSince(ctx, k, s.Ordinal))
		}, func() error {
			if err := raw(); err != nil {
				return err
			}
			return check(tg.log.LoadSince(ctx, k, mid))
		})
	})
}
