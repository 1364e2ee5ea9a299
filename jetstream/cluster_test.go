package jetstream_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

func TestClusterReadsFromAFollowerSeeEveryAcknowledgedAppend(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster tests are not run with -short")
	}
	c := testserver.StartCluster(t, 3)
	scheme := freshScheme()
	writerConn := c.Nodes[0].Connect(t)
	writer, err := jetstream.New(writerConn, jetstream.WithScheme(scheme), jetstream.WithReplicas(3))
	require.NoError(t, err)
	require.NoError(t, writer.EnsureTenant(ctx(t), key.Tenant))
	leader := c.StreamLeader(scheme.Stream(key.Tenant))
	// Write through the leader, read through each follower.
	writer, err = jetstream.New(leader.Connect(t), jetstream.WithScheme(scheme), jetstream.WithReplicas(3))
	require.NoError(t, err)
	var readers []*jetstream.Log
	for _, n := range c.Others(leader) {
		r, err := jetstream.New(n.Connect(t), jetstream.WithScheme(scheme), jetstream.WithReplicas(3))
		require.NoError(t, err)
		readers = append(readers, r)
	}
	var cursor uint64
	for i := range 300 {
		last, err := writer.Append(ctx(t), key, events(1+i%3))
		require.NoError(t, err)
		r := readers[i%len(readers)]
		recs, err := r.LoadSince(ctx(t), key, cursor)
		require.NoError(t, err)
		require.NotEmpty(t, recs, "read %d since %d missed the append that returned %d", i, cursor, last)
		require.Equal(t, last, recs[len(recs)-1].Ordinal, "read %d", i)
		require.Len(t, recs, 1+i%3, "read %d", i)
		if i%10 == 0 {
			_, err := writer.ArchiveBefore(ctx(t), key, last-1)
			require.NoError(t, err)
			recs, err := r.LoadSince(ctx(t), key, 0)
			require.NoError(t, err)
			require.Equal(t, []uint64{last}, []uint64{recs[0].Ordinal}, "read %d after archive shows archived events", i)
			require.Len(t, recs, 1)
		}
		cursor = last
	}
}

// TestClusterLeaderFailoverLosesNoAcknowledgedEvent stops the stream leader
// while four writers append, retrying unknown outcomes with the same event
// IDs, and checks that every acknowledged event is stored exactly once.
func TestClusterLeaderFailoverLosesNoAcknowledgedEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster tests are not run with -short")
	}
	c := testserver.StartCluster(t, 3)
	scheme := freshScheme()
	nc := testserver.Connect(t, c.URLs())
	log, err := jetstream.New(nc, jetstream.WithScheme(scheme), jetstream.WithReplicas(3), jetstream.WithRequestTimeout(2*time.Second))
	require.NoError(t, err)
	require.NoError(t, log.EnsureTenant(ctx(t), key.Tenant))
	stream := scheme.Stream(key.Tenant)

	const writers, appends = 4, 150
	type acked struct {
		ids  []string
		last uint64
	}
	var (
		mu      sync.Mutex
		all     []acked
		wg      sync.WaitGroup
		retries int
		errs    = make(chan error, writers)
		midway  = make(chan struct{})
		once    sync.Once
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := sessionlog.ThreadKey{Tenant: key.Tenant, Thread: fmt.Sprint("writer-", w)}
			for i := range appends {
				if i == appends/3 {
					once.Do(func() { close(midway) })
				}
				batch := events(1 + i%3)
				for j := range batch {
					batch[j].ID = fmt.Sprintf("w%d-a%d-e%d", w, i, j)
				}
				deadline := time.Now().Add(time.Minute)
				for {
					last, err := log.Append(ctx(t), k, batch)
					if err == nil {
						ids := make([]string, len(batch))
						for j := range batch {
							ids[j] = batch[j].ID
						}
						mu.Lock()
						all = append(all, acked{ids, last})
						mu.Unlock()
						break
					}
					if errors.Is(err, sessionlog.ErrPartialRetry) || errors.Is(err, sessionlog.ErrInvalidEvent) || time.Now().After(deadline) {
						errs <- fmt.Errorf("writer %d append %d: %w", w, i, err)
						return
					}
					mu.Lock()
					retries++
					mu.Unlock()
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	<-midway
	leader := c.StreamLeader(stream)
	leader.Shutdown()
	time.Sleep(500 * time.Millisecond)
	leader.Restart()
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Logf("%d appends acknowledged, %d retried after an error", len(all), retries)

	ordinalOf := map[string]uint64{}
	seen := map[string]bool{}
	for w := range writers {
		recs, err := log.LoadSince(ctx(t), sessionlog.ThreadKey{Tenant: key.Tenant, Thread: fmt.Sprint("writer-", w)}, 0)
		require.NoError(t, err)
		require.Len(t, recs, appends*2, "writer %d: 1+2+3 events per three appends", w)
		for i, r := range recs {
			require.False(t, seen[r.ID], "event %s stored twice", r.ID)
			seen[r.ID] = true
			ordinalOf[r.ID] = r.Ordinal
			if i > 0 {
				require.Greater(t, r.Ordinal, recs[i-1].Ordinal)
			}
		}
	}
	for _, a := range all {
		for _, id := range a.ids {
			require.True(t, seen[id], "acknowledged event %s is missing", id)
		}
	}
	for _, a := range all {
		require.Equal(t, a.last, ordinalOf[a.ids[len(a.ids)-1]], "Append returned the ordinal of its last event")
	}
}

// TestReadsThroughTheLeaderWhenNoReplicaServesDirectGets turns direct gets
// off, the path of a read whose replicas all stay behind: the read goes
// through the stream leader without backing off again for every event, and
// returns every event once, in order.
func TestReadsThroughTheLeaderWhenNoReplicaServesDirectGets(t *testing.T) {
	for _, replicas := range []int{1, 3} {
		t.Run(fmt.Sprintf("R%d", replicas), func(t *testing.T) {
			if replicas > 1 && testing.Short() {
				t.Skip("cluster tests are not run with -short")
			}
			url := ""
			if replicas == 1 {
				url = testserver.Start(t).URL()
			} else {
				url = testserver.StartCluster(t, 3).URLs()
			}
			scheme := freshScheme()
			nc := testserver.Connect(t, url)
			log, err := jetstream.New(nc, jetstream.WithScheme(scheme), jetstream.WithReplicas(replicas))
			require.NoError(t, err)
			var want []uint64
			for range 20 {
				last, err := log.Append(ctx(t), key, events(5))
				require.NoError(t, err)
				want = append(want, last-4, last-3, last-2, last-1, last)
			}
			js, err := natsjs.New(nc)
			require.NoError(t, err)
			s, err := js.Stream(ctx(t), scheme.Stream(key.Tenant))
			require.NoError(t, err)
			cfg := s.CachedInfo().Config
			cfg.AllowDirect = false
			_, err = js.UpdateStream(ctx(t), cfg)
			require.NoError(t, err)

			// Count what the reads send: a subscriber to the direct get
			// subject would answer them (by timing out), so count the
			// connection's own messages.
			sent := nc.Stats().OutMsgs
			recs, err := log.LoadSince(ctx(t), key, 0)
			require.NoError(t, err)
			var got []uint64
			for _, r := range recs {
				got = append(got, r.Ordinal)
			}
			require.Equal(t, want, got)
			recs, err = log.LoadSince(ctx(t), key, want[49])
			require.NoError(t, err)
			require.Len(t, recs, 50)
			require.Equal(t, want[50], recs[0].Ordinal)
			// 150 leader gets, and at most staleRetries direct gets a read
			// then one every 32 events: far from a round of retries per event.
			requests := nc.Stats().OutMsgs - sent
			require.LessOrEqual(t, requests, uint64(150+2*(8+1+100/32+1)+4), "requests of two reads of 100 and 50 events")
		})
	}
}
