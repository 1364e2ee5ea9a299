package jetstream_test

import (
	"sync"
	"testing"
	"time"

	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/stretchr/testify/require"
)

// TestAppendsSurviveTheirConnectionDropping drops the Log's connection
// again and again while writers append single events and atomic batches:
// an append cut short by the drop has an unknown outcome, and the library
// sends it again once the connection is back, so every append returns
// without error and the thread holds every event exactly once.
func TestAppendsSurviveTheirConnectionDropping(t *testing.T) {
	srv := testserver.Start(t)
	nc := srv.Connect(t)
	log := newLog(t, nc)
	k := sessionlog.ThreadKey{Tenant: "acme", Thread: "reconnects"}
	_, err := log.Append(ctx(t), k, events(1))
	require.NoError(t, err)

	const writers, appends = 4, 40
	stop := make(chan struct{})
	var dropper sync.WaitGroup
	drops := 0
	dropper.Go(func() {
		// Each drop waits for the connection to be back and for appends
		// to be in flight again, so that the writers make progress.
		for drops < 30 {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if nc.IsConnected() && nc.ForceReconnect() == nil {
				drops++
			}
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, writers*appends)
	for w := range writers {
		wg.Go(func() {
			for i := range appends {
				_, err := log.Append(ctx(t), k, events(1+(w+i)%3))
				errs <- err
			}
		})
	}
	wg.Wait()
	close(stop)
	dropper.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Positive(t, drops)

	recs, err := log.LoadSince(ctx(t), k, 0)
	require.NoError(t, err)
	want := 1
	for w := range writers {
		for i := range appends {
			want += 1 + (w+i)%3
		}
	}
	require.Len(t, recs, want, "every event once, after %d dropped connections", drops)
	seen := map[string]bool{}
	for _, r := range recs {
		require.False(t, seen[r.ID], "event %s stored twice", r.ID)
		seen[r.ID] = true
	}
}
