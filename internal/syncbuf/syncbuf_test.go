package syncbuf_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/jetsession/jetsession/internal/syncbuf"
)

func TestConcurrentWritesAndReads(t *testing.T) {
	var b syncbuf.Buffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("x\n"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := strings.Count(b.String(), "x\n"); n != 400 {
		t.Fatalf("%d lines, want 400", n)
	}
}
