package sessionlog

import (
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
)

// ColdRecord is a hot log message as the cold tier keeps it: its record,
// when the hot log stored it (the server's clock, which expiry by maximum
// age and TTL counts from) and, for a message that is not a valid event,
// the corrupt-event error a read reported for it (Record then holds only
// the ordinal; the error's Reason, Time and Data are kept, its Header is
// not).
type ColdRecord struct {
	Record
	Stored  time.Time
	Corrupt *CorruptEventError
}

// expires returns when the record expires by its TTL, zero for never.
func (r *ColdRecord) expires() time.Time {
	if r.Corrupt != nil || r.TTL <= 0 {
		return time.Time{}
	}
	return r.Stored.Add(r.TTL)
}

// Segment format, version 1. Everything is little-endian or varint:
//
//	"JSCS" | version byte (1) | uvarint length of the decoded body |
//	zstd frame of the body
//
//	body:   uvarint record count, then per record:
//	        uvarint ordinal | kind byte (0 event, 1 corrupt) | time stored |
//	        event:   string ID | string type | time | uvarint TTL seconds |
//	                 uvarint meta count, then string key, string value each |
//	                 bytes data
//	        corrupt: string reason | time | bytes data
//	time:   varint Unix seconds | uvarint nanoseconds (< 1e9)
//	string, bytes: uvarint length | the bytes
const (
	segmentMagic   = "JSCS"
	segmentVersion = 1
	// maxSegmentBody bounds the decoded body a segment may declare, so
	// that a hostile segment cannot make a read allocate without bound.
	maxSegmentBody = 256 << 20
)

var (
	zstdEnc = sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
		if err != nil {
			panic(err)
		}
		return e
	})
	zstdDec = sync.OnceValue(func() *zstd.Decoder {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxSegmentBody))
		if err != nil {
			panic(err)
		}
		return d
	})
)

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.AppendUvarint(binary.AppendVarint(b, 0), 0)
	}
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// recordSize is about what a record takes in a segment body.
func recordSize(r *ColdRecord) int {
	if r.Corrupt != nil {
		return 64 + len(r.Corrupt.Reason) + len(r.Corrupt.Data)
	}
	n := 64 + len(r.ID) + len(r.Type) + len(r.Data)
	for k, v := range r.Meta {
		n += 4 + len(k) + len(v)
	}
	return n
}

// encodeSegment encodes records, in strictly increasing ordinal order.
func encodeSegment(recs []ColdRecord) []byte {
	body := binary.AppendUvarint(nil, uint64(len(recs)))
	for i := range recs {
		r := &recs[i]
		body = binary.AppendUvarint(body, r.Ordinal)
		if r.Corrupt != nil {
			body = append(body, 1)
			body = appendTime(body, r.Stored)
			body = appendString(body, r.Corrupt.Reason)
			body = appendTime(body, r.Corrupt.Time)
			body = appendString(body, string(r.Corrupt.Data))
			continue
		}
		body = append(body, 0)
		body = appendTime(body, r.Stored)
		body = appendString(body, r.ID)
		body = appendString(body, r.Type)
		body = appendTime(body, r.Time)
		body = binary.AppendUvarint(body, uint64(r.TTL/time.Second))
		keys := make([]string, 0, len(r.Meta))
		for k := range r.Meta {
			keys = append(keys, k)
		}
		sortStrings(keys)
		body = binary.AppendUvarint(body, uint64(len(keys)))
		for _, k := range keys {
			body = appendString(body, k)
			body = appendString(body, r.Meta[k])
		}
		body = appendString(body, string(r.Data))
	}
	out := append([]byte(segmentMagic), segmentVersion)
	out = binary.AppendUvarint(out, uint64(len(body)))
	return zstdEnc().EncodeAll(body, out)
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// segmentReader decodes a segment body; every read is bounds-checked.
type segmentReader struct {
	b    []byte
	err  error
	seen map[string]string // see shared
}

func (r *segmentReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

func (r *segmentReader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad %s", what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *segmentReader) byte(what string) byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail("truncated at %s", what)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *segmentReader) bytes(what string) []byte {
	if r.err != nil {
		return nil
	}
	n, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.fail("bad %s length", what)
		return nil
	}
	r.b = r.b[k:]
	if n > uint64(len(r.b)) {
		r.fail("%s length %d exceeds the %d bytes left", what, n, len(r.b))
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *segmentReader) string(what string) string {
	b := r.bytes(what)
	if r.err == nil && !utf8.Valid(b) {
		r.fail("%s is not UTF-8", what)
	}
	return string(b)
}

// shared is string for values that repeat across records (types, metadata
// keys): each distinct value is allocated once per segment.
func (r *segmentReader) shared(what string) string {
	b := r.bytes(what)
	if r.err != nil {
		return ""
	}
	if s, ok := r.seen[string(b)]; ok {
		return s
	}
	if !utf8.Valid(b) {
		r.fail("%s is not UTF-8", what)
		return ""
	}
	if r.seen == nil {
		r.seen = make(map[string]string)
	}
	s := string(b)
	if len(r.seen) < maxShared {
		r.seen[s] = s
	}
	return s
}

// maxShared bounds the distinct values a segmentReader keeps for sharing.
const maxShared = 256

func (r *segmentReader) time(what string) time.Time {
	if r.err != nil {
		return time.Time{}
	}
	sec, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad %s", what)
		return time.Time{}
	}
	r.b = r.b[n:]
	nsec := r.uvarint(what)
	if nsec >= 1e9 {
		r.fail("bad %s nanoseconds %d", what, nsec)
	}
	if r.err != nil || sec == 0 && nsec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// decodeSegment decodes a segment whose name says it holds ordinals first
// to last. It refuses, with an error saying why, anything encodeSegment
// could not have produced from valid records: a bad header or frame, a
// body larger than declared, records out of order or outside [first,
// last], invalid events, trailing bytes. The records do not alias data:
// their payloads share one buffer of their own, each capped to its length.
func decodeSegment(data []byte, first, last uint64) ([]ColdRecord, error) {
	if len(data) < len(segmentMagic)+1 || string(data[:len(segmentMagic)]) != segmentMagic {
		return nil, errors.New("not a segment (bad magic)")
	}
	if v := data[len(segmentMagic)]; v != segmentVersion {
		return nil, fmt.Errorf("unknown segment version %d", v)
	}
	rest := data[len(segmentMagic)+1:]
	size, n := binary.Uvarint(rest)
	if n <= 0 || size > maxSegmentBody {
		return nil, errors.New("bad segment body length")
	}
	body, err := zstdDec().DecodeAll(rest[n:], make([]byte, 0, min(size, 1<<20)))
	if err != nil {
		return nil, fmt.Errorf("decompressing: %v", err)
	}
	if uint64(len(body)) != size {
		return nil, fmt.Errorf("body is %d bytes, the header says %d", len(body), size)
	}
	r := &segmentReader{b: body}
	count := r.uvarint("record count")
	if r.err == nil && (count == 0 || count > uint64(len(r.b))) {
		r.fail("bad record count %d", count)
	}
	if r.err != nil {
		return nil, r.err
	}
	recs := make([]ColdRecord, 0, count)
	var prev uint64
	for i := uint64(0); i < count && r.err == nil; i++ {
		var rec ColdRecord
		rec.Ordinal = r.uvarint("ordinal")
		switch {
		case r.err != nil:
		case rec.Ordinal < first || rec.Ordinal > last:
			r.fail("ordinal %d is outside the segment's range %d-%d", rec.Ordinal, first, last)
		case i > 0 && rec.Ordinal <= prev:
			r.fail("ordinal %d does not follow %d", rec.Ordinal, prev)
		}
		prev = rec.Ordinal
		kind := r.byte("kind")
		rec.Stored = r.time("store time")
		switch kind {
		case 0:
			rec.ID = r.string("ID")
			rec.Type = r.shared("type")
			rec.Time = r.time("event time")
			ttl := r.uvarint("TTL")
			if ttl > math.MaxInt64/uint64(time.Second) {
				r.fail("TTL %d out of range", ttl)
			}
			rec.TTL = time.Duration(ttl) * time.Second
			nmeta := r.uvarint("meta count")
			if nmeta > uint64(len(r.b)) {
				r.fail("bad meta count %d", nmeta)
			}
			for j := uint64(0); j < nmeta && r.err == nil; j++ {
				if rec.Meta == nil {
					rec.Meta = make(map[string]string, nmeta)
				}
				k := r.shared("meta key")
				if _, dup := rec.Meta[k]; dup {
					r.fail("meta key %q repeated", k)
				}
				rec.Meta[k] = r.string("meta value")
			}
			if d := r.bytes("data"); len(d) > 0 {
				rec.Data = d // the body is this decode's own: no copy
			}
			if r.err == nil {
				if err := ValidateEvent(&rec.Event); err != nil {
					r.fail("record %d: %v", rec.Ordinal, err)
				}
			}
		case 1:
			reason := r.string("reason")
			at := r.time("time")
			var d []byte
			if b := r.bytes("data"); len(b) > 0 {
				d = b
			}
			rec.Corrupt = &CorruptEventError{Ordinal: rec.Ordinal, Reason: reason, Time: at, Data: d}
		default:
			r.fail("unknown record kind %d", kind)
		}
		if r.err == nil && rec.Stored.IsZero() {
			r.fail("record %d has no store time", rec.Ordinal)
		}
		recs = append(recs, rec)
	}
	switch {
	case r.err != nil:
		return nil, r.err
	case len(r.b) != 0:
		return nil, fmt.Errorf("%d bytes after the last record", len(r.b))
	case recs[0].Ordinal != first || recs[len(recs)-1].Ordinal != last:
		return nil, fmt.Errorf("records span %d-%d, the name says %d-%d", recs[0].Ordinal, recs[len(recs)-1].Ordinal, first, last)
	}
	return recs, nil
}

// Segment names: <thread token>/<first>-<last>-<newest store>-<TTL end>,
// the ordinals as 20 decimal digits (so names sort by ordinal), the
// newest store time of its records and the time the last of them expires
// by TTL as 16 hex digits of Unix nanoseconds (ffffffffffffffff: some
// record has no TTL). The times let archiving drop wholly expired segments
// without reading them.

// segmentName is a parsed segment name.
type segmentName struct {
	name        string
	first, last uint64
	newest      int64  // Unix nanoseconds
	ttlEnd      uint64 // Unix nanoseconds, math.MaxUint64 for never
}

func makeSegmentName(thread string, recs []ColdRecord) segmentName {
	s := segmentName{first: recs[0].Ordinal, last: recs[len(recs)-1].Ordinal}
	for i := range recs {
		s.newest = max(s.newest, recs[i].Stored.UnixNano())
		exp := recs[i].expires()
		switch {
		case exp.IsZero():
			s.ttlEnd = math.MaxUint64
		case s.ttlEnd != math.MaxUint64:
			s.ttlEnd = max(s.ttlEnd, uint64(max(0, exp.UnixNano())))
		}
	}
	s.name = fmt.Sprintf("%s/%020d-%020d-%016x-%016x", threadToken(thread), s.first, s.last, uint64(max(0, s.newest)), s.ttlEnd)
	return s
}

// parseSegmentName parses the part of a name after the thread prefix; ok
// is false for names the tier did not write.
func parseSegmentName(name, prefix string) (segmentName, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	parts := strings.Split(rest, "-")
	if !ok || len(parts) != 4 || len(parts[0]) != 20 || len(parts[1]) != 20 || len(parts[2]) != 16 || len(parts[3]) != 16 {
		return segmentName{}, false
	}
	s := segmentName{name: name}
	var err1, err2, err3, err4 error
	s.first, err1 = strconv.ParseUint(parts[0], 10, 64)
	s.last, err2 = strconv.ParseUint(parts[1], 10, 64)
	newest, err3 := strconv.ParseUint(parts[2], 16, 64)
	s.ttlEnd, err4 = strconv.ParseUint(parts[3], 16, 64)
	if errors.Join(err1, err2, err3, err4) != nil || s.first == 0 || s.first > s.last || newest > math.MaxInt64 {
		return segmentName{}, false
	}
	s.newest = int64(newest)
	return s, true
}

// threadToken encodes a thread name injectively into a short, path-safe
// token that no two names share even on a case-insensitive file system:
// unpadded base32 with the extended hex alphabet in lower case (0-9, a-v),
// at most 410 characters for the longest thread name.
func threadToken(thread string) string {
	return strings.ToLower(base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte(thread)))
}
