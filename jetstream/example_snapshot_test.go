package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/jetsession/jetsession/internal/embedded"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats.go"
)

// Hydrate a thread from its last snapshot plus the events after it, and
// save a new snapshot once the runtime has caught up.
func ExampleLog_LoadSnapshot() {
	dir, _ := os.MkdirTemp("", "jetsession-example")
	defer os.RemoveAll(dir)
	srv, err := embedded.Start(embedded.Config{StoreDir: dir})
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	log, err := jetstream.New(nc)
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	key := sessionlog.ThreadKey{Tenant: "acme", Thread: "support/4711"}

	// A runtime folds events into its state; here, a count of turns.
	turns, err := log.Append(ctx, key, []sessionlog.Event{
		{Type: "user_message", Data: []byte(`{"text":"my order is late"}`)},
		{Type: "model_reply", Data: []byte(`{"text":"let me check"}`)},
	})
	if err != nil {
		panic(err)
	}
	if err := log.SaveSnapshot(ctx, key, turns, []byte(`{"turns":2}`)); err != nil {
		panic(err)
	}
	if _, err := log.Append(ctx, key, []sessionlog.Event{
		{Type: "tool_result", Data: []byte(`{"status":"shipped"}`)},
	}); err != nil {
		panic(err)
	}

	// Hydrate: the snapshot, then only the events after it.
	snap, err := log.LoadSnapshot(ctx, key)
	switch {
	case errors.Is(err, sessionlog.ErrNoSnapshot):
		snap = sessionlog.Snapshot{State: []byte(`{"turns":0}`)} // the initial state, from ordinal 0
	case err != nil:
		panic(err)
	}
	rest, err := log.LoadSince(ctx, key, snap.Ordinal)
	if err != nil {
		panic(err)
	}
	fmt.Printf("snapshot at %d: %s\n", snap.Ordinal, snap.State)
	for _, r := range rest {
		fmt.Println(r.Ordinal, r.Type, string(r.Data))
	}

	// Caught up: save the new state at the last ordinal folded in. An
	// older snapshot can never replace it.
	last := rest[len(rest)-1].Ordinal
	if err := log.SaveSnapshot(ctx, key, last, []byte(`{"turns":3}`)); err != nil {
		panic(err)
	}
	err = log.SaveSnapshot(ctx, key, snap.Ordinal, []byte(`{"turns":2}`))
	fmt.Println("stale save refused:", errors.Is(err, sessionlog.ErrConflict))
	// Output:
	// snapshot at 2: {"turns":2}
	// 3 tool_result {"status":"shipped"}
	// stale save refused: true
}
