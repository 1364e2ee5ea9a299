package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// MaxQuarantineData bounds the payload a quarantine keeps of one message.
const MaxQuarantineData = 64 << 10

// Quarantined is a stored message the bridge did not deliver: it is not a
// valid event (a header the protocol requires is missing or malformed, a
// field is beyond the limits, its subject names no valid thread), or a
// sink could not store it. Everything but Ordinal, Subject, Tenant and Time
// is what the writer stored, untrusted.
type Quarantined struct {
	Tenant string `json:"tenant"`
	// Thread is empty when the subject names no valid thread.
	Thread  string `json:"thread,omitempty"`
	Subject string `json:"subject,omitempty"`
	Ordinal uint64 `json:"ordinal"`
	Reason  string `json:"reason"`
	// Time is when the server stored the message, if known.
	Time   time.Time           `json:"time,omitzero"`
	Header map[string][]string `json:"header,omitempty"`
	// Data is the stored payload, at most MaxQuarantineData of it;
	// Truncated says when it was longer.
	Data          []byte    `json:"data_raw,omitempty"`
	Truncated     bool      `json:"data_truncated,omitempty"`
	QuarantinedAt time.Time `json:"quarantined_at"`
}

// Quarantine keeps what the bridge could not deliver, for an operator to
// inspect. The bridge moves a tenant's position past a message only after
// Put returned nil, so Put must make the entry durable. Put is called from
// many goroutines.
type Quarantine interface {
	Put(ctx context.Context, q Quarantined) error
}

// QuarantineFile is a Quarantine writing one JSON object per line to a
// file, fsynced before Put returns. Past its size limit the file is renamed
// with the suffix ".1" (replacing an older one) and a new one is started,
// so a tenant flooding it with bad messages costs at most twice the limit
// of disk.
type QuarantineFile struct {
	path     string
	maxBytes int64

	mu   sync.Mutex
	f    *os.File
	size int64
}

var _ Quarantine = (*QuarantineFile)(nil)

// OpenQuarantineFile opens (creating it and its folder if needed) the
// quarantine file at path, rotated past maxBytes (at least 1 MiB).
func OpenQuarantineFile(path string, maxBytes int64) (*QuarantineFile, error) {
	if maxBytes < 1<<20 {
		return nil, fmt.Errorf("bridge: quarantine file limit must be at least 1 MiB, got %d", maxBytes)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("bridge: quarantine: %w", err)
	}
	q := &QuarantineFile{path: path, maxBytes: maxBytes}
	if err := q.open(); err != nil {
		return nil, err
	}
	return q, nil
}

func (q *QuarantineFile) open() error {
	f, err := os.OpenFile(q.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("bridge: quarantine: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("bridge: quarantine: %w", err)
	}
	q.f, q.size = f, st.Size()
	return SyncDir(filepath.Dir(q.path))
}

// Path returns the file's path.
func (q *QuarantineFile) Path() string { return q.path }

// Put implements Quarantine.
func (q *QuarantineFile) Put(ctx context.Context, e Quarantined) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(e.Data) > MaxQuarantineData {
		e.Data, e.Truncated = e.Data[:MaxQuarantineData], true
	}
	if e.QuarantinedAt.IsZero() {
		e.QuarantinedAt = time.Now().UTC()
	}
	line, err := json.Marshal(&e)
	if err != nil {
		// Headers and reasons may hold invalid UTF-8, which encoding/json
		// replaces; it fails only on what cannot happen here.
		return fmt.Errorf("bridge: quarantine: encoding ordinal %d of %q: %w", e.Ordinal, e.Tenant, err)
	}
	line = append(line, '\n')
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.f == nil {
		return errors.New("bridge: quarantine file is closed")
	}
	if q.size > 0 && q.size+int64(len(line)) > q.maxBytes {
		if err := q.rotate(); err != nil {
			return err
		}
	}
	n, err := q.f.Write(line)
	q.size += int64(n)
	if err != nil {
		return fmt.Errorf("bridge: quarantine: %w", err)
	}
	if err := q.f.Sync(); err != nil {
		return fmt.Errorf("bridge: quarantine: %w", err)
	}
	return nil
}

func (q *QuarantineFile) rotate() error {
	if err := q.f.Close(); err != nil {
		return fmt.Errorf("bridge: quarantine: %w", err)
	}
	q.f = nil
	rerr := os.Rename(q.path, q.path+".1")
	if err := q.open(); err != nil {
		return err
	}
	if rerr != nil {
		return fmt.Errorf("bridge: quarantine: %w", rerr)
	}
	return nil
}

// Close closes the file.
func (q *QuarantineFile) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.f == nil {
		return nil
	}
	err := q.f.Close()
	q.f = nil
	return err
}
