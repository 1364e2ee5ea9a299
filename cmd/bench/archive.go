package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jetsession/jetsession/sessionlog"
)

// runArchive archives the first half of a thread with ArchiveBefore, beside
// a raw purge request of the first half of an identical thread. Each pair
// gets two fresh threads written in turn into the same tenant stream, so
// both purges work on the same layout.
func runArchive(ctx context.Context, r *runner, t *target) (*outcome, error) {
	const tenant = "archive"
	size := 1000
	if r.cfg.smoke {
		size = 100
	}
	half := size / 2
	if err := t.log.EnsureTenant(ctx, tenant); err != nil {
		return nil, err
	}
	stream := t.scheme.Stream(tenant)
	n := r.pairs()
	round := 0
	out := &outcome{}
	var err error
	out.reps, err = repeat(ctx, r.cfg.reps, func() ([]metric, error) {
		var lib, raw []float64
		for range n {
			round++
			libThread, rawThread := "lib"+strconv.Itoa(round), "raw"+strconv.Itoa(round)
			seqs, err := t.fill(ctx, tenant, []string{libThread, rawThread}, size, true)
			if err != nil {
				return nil, err
			}
			ds, err := interleaveFrom(ctx, round, 1,
				func() error {
					archived, err := t.log.ArchiveBefore(ctx, sessionlog.ThreadKey{Tenant: tenant, Thread: libThread}, seqs[0][half-1])
					if err != nil {
						return err
					}
					return countErr("ArchiveBefore", archived, half)
				},
				func() error {
					// The purge keeps sequences from seq on.
					purged, err := t.purge(ctx, stream, t.scheme.Subject(tenant, rawThread), seqs[1][half-1]+1)
					if err != nil {
						return err
					}
					return countErr("purge", int(purged), half)
				})
			if err != nil {
				return nil, err
			}
			lib, raw = append(lib, micros(ds[0][0])), append(raw, micros(ds[1][0]))
		}
		return []metric{
			{Name: fmt.Sprintf("archive %d of %d p50", half, size), Unit: unitMicros, Lib: median(lib), Twin: "raw STREAM.PURGE filter+seq", Raw: median(raw), Goal: goalTime},
		}, nil
	})
	out.note("%d pairs per repetition, each on two fresh %d-event threads written in turn into one tenant stream", n, size)
	return out, err
}

// purge sends a raw purge request for subject below seq and returns the
// count the server reports.
func (t *target) purge(ctx context.Context, stream, subject string, seq uint64) (uint64, error) {
	body, err := json.Marshal(map[string]any{"filter": subject, "seq": seq})
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	msg, err := t.nc.RequestWithContext(ctx, "$JS.API.STREAM.PURGE."+stream, body)
	if err != nil {
		return 0, err
	}
	var resp struct {
		Success bool   `json:"success"`
		Purged  uint64 `json:"purged"`
		Error   *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return 0, err
	}
	if resp.Error != nil || !resp.Success {
		return 0, fmt.Errorf("purge of %s refused: %s", subject, msg.Data)
	}
	return resp.Purged, nil
}
