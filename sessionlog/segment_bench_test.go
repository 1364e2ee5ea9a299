package sessionlog

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkDecodeSegment decodes a segment of 950 events of 512 bytes,
// the cold part of cmd/bench's hydrate row:
//
//	go test ./sessionlog -run '^$' -bench DecodeSegment
func BenchmarkDecodeSegment(b *testing.B) {
	data := make([]byte, 512)
	for i := range data {
		data[i] = 'a' + byte(i%26)
	}
	at := time.Now().UTC()
	recs := make([]ColdRecord, 950)
	for i := range recs {
		recs[i] = ColdRecord{Record: Record{Ordinal: uint64(100*i + 1), Event: Event{
			ID: fmt.Sprintf("t050:f%d", i), Type: "tool_result", Time: at, Data: data}}, Stored: at}
	}
	seg := encodeSegment(recs)
	b.SetBytes(int64(len(recs) * len(data)))
	b.ReportAllocs()
	for b.Loop() {
		got, err := decodeSegment(seg, recs[0].Ordinal, recs[len(recs)-1].Ordinal)
		if err != nil || len(got) != len(recs) {
			b.Fatal(err)
		}
	}
}
