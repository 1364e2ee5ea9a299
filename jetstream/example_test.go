package jetstream_test

import (
	"context"
	"fmt"
	"os"

	"github.com/jetsession/jetsession/internal/embedded"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats.go"
)

// Open a log on a NATS connection, append a thread's events, hydrate the
// thread and archive what is no longer hot.
func Example() {
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
	log, err := jetstream.New(nc) // jetstream.WithReplicas(3) on a cluster
	if err != nil {
		panic(err)
	}

	ctx := context.Background()
	key := sessionlog.ThreadKey{Tenant: "acme", Thread: "support/4711"}
	last, err := log.Append(ctx, key, []sessionlog.Event{
		{Type: "user_message", Data: []byte(`{"text":"my order is late"}`)},
		{Type: "tool_call", Data: []byte(`{"tool":"order_status","id":4711}`)},
	})
	if err != nil {
		panic(err)
	}
	_, err = log.Append(ctx, key, []sessionlog.Event{
		{Type: "tool_result", Data: []byte(`{"status":"shipped"}`)},
	}, sessionlog.ExpectLast(last)) // fails with ErrConflict if another writer got there first
	if err != nil {
		panic(err)
	}

	records, err := log.LoadSince(ctx, key, 0) // hydrate the whole thread
	if err != nil {
		panic(err)
	}
	for _, r := range records {
		fmt.Println(r.Ordinal, r.Type, string(r.Data))
	}

	archived, err := log.ArchiveBefore(ctx, key, last) // the first two leave the hot log
	if err != nil {
		panic(err)
	}
	head, _ := log.Head(ctx, key)
	fmt.Println("archived", archived, "live", head.Count)
	// Output:
	// 1 user_message {"text":"my order is late"}
	// 2 tool_call {"tool":"order_status","id":4711}
	// 3 tool_result {"status":"shipped"}
	// archived 2 live 1
}
