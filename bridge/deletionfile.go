package bridge

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// jsonDeletion is the JSON record of a Deletion.
type jsonDeletion struct {
	Tenant string    `json:"tenant"`
	Thread string    `json:"thread"`
	Before uint64    `json:"before"`
	Time   time.Time `json:"time"`
}

// MarshalJSON encodes the deletion as its JSON record (see Deletion):
// every key is always present, thread "" for a tenant deletion, and '<',
// '>' and '&' are not escaped.
func (d Deletion) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(jsonDeletion{Tenant: d.Tenant, Thread: d.Thread, Before: d.Before, Time: d.Time.UTC()}); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// UnmarshalJSON decodes a JSON record as MarshalJSON writes it. The
// tenant and before keys are required.
func (d *Deletion) UnmarshalJSON(b []byte) error {
	var j struct {
		Tenant *string   `json:"tenant"`
		Thread string    `json:"thread"`
		Before *uint64   `json:"before"`
		Time   time.Time `json:"time"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	if j.Tenant == nil || j.Before == nil {
		return errors.New("bridge: a deletion record needs tenant and before")
	}
	*d = Deletion{Tenant: *j.Tenant, Thread: j.Thread, Before: *j.Before, Time: j.Time}
	return nil
}

// deletionKey identifies a deletion (tenant, thread, before) in 16 bytes,
// so that a sink remembering every deletion it recorded keeps memory small
// whatever the names.
type deletionKey [16]byte

func keyOfDeletion(d *Deletion) deletionKey {
	h := sha256.New()
	var n [8]byte
	for _, s := range []string{d.Tenant, d.Thread} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	binary.BigEndian.PutUint64(n[:], d.Before)
	h.Write(n[:])
	var k deletionKey
	copy(k[:], h.Sum(nil))
	return k
}

// DeletionFile records deletions in a JSON-lines file, one record (see
// Deletion) per line, for sinks that store files and cannot take rows back
// out of what they wrote: readers leave out the rows a recorded deletion
// covers. It remembers what the file holds, so that no deletion is recorded
// twice. It is not safe for concurrent use; a sink guards it with its own
// lock, and only one sink may use a file at a time.
type DeletionFile struct {
	path     string
	size     int64 // bytes of whole lines
	recorded map[deletionKey]bool
}

// OpenDeletionFile loads the deletions recorded in the file at path,
// creating it (and fsyncing its folder) when it does not exist, so that
// readers always find it. A last line cut short by a crash, which was
// never reported as recorded, is cut off the file; any other line that is
// not a deletion record is an error.
func OpenDeletionFile(path string) (*DeletionFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("bridge: opening the deletions file: %w", err)
	}
	defer f.Close()
	df := &DeletionFile{path: path, recorded: map[deletionKey]bool{}}
	whole, err := readDeletions(f, path, func(d *Deletion) { df.recorded[keyOfDeletion(d)] = true })
	if err != nil {
		return nil, err
	}
	df.size = whole
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("bridge: opening the deletions file: %w", err)
	}
	if fi.Size() > whole {
		if err := f.Truncate(whole); err != nil {
			return nil, fmt.Errorf("bridge: cutting the unfinished last line of %s: %w", path, err)
		}
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("bridge: syncing %s: %w", path, err)
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("bridge: syncing the folder of %s: %w", path, err)
	}
	return df, nil
}

// Path returns the file's path.
func (f *DeletionFile) Path() string { return f.path }

// Recorded reports whether the file holds d (the same tenant, thread and
// Before).
func (f *DeletionFile) Recorded(d *Deletion) bool { return f.recorded[keyOfDeletion(d)] }

// Fresh returns the deletions of ds that the file does not hold, each
// once, in their order.
func (f *DeletionFile) Fresh(ds []Deletion) []Deletion {
	var fresh []Deletion
	seen := map[deletionKey]bool{}
	for i := range ds {
		k := keyOfDeletion(&ds[i])
		if f.recorded[k] || seen[k] {
			continue
		}
		seen[k] = true
		fresh = append(fresh, ds[i])
	}
	return fresh
}

// Record appends to the file, in one write, the deletions of ds it does
// not hold yet, and fsyncs it; it returns those it appended. After a
// failure nothing of them is left in the file (as far as it can be cut
// off again) and none counts as recorded.
func (f *DeletionFile) Record(ds []Deletion) ([]Deletion, error) {
	fresh := f.Fresh(ds)
	if len(fresh) == 0 {
		return nil, nil
	}
	var buf bytes.Buffer
	for i := range fresh {
		b, err := fresh[i].MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("bridge: encoding a deletion of %q: %w", fresh[i].Tenant, err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	file, err := os.OpenFile(f.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("bridge: recording deletions: %w", err)
	}
	_, err = file.Write(buf.Bytes())
	if err == nil {
		err = file.Sync()
	}
	if err != nil {
		// Best effort: should the cut fail too, the retry records these
		// deletions a second time, which readers take as once.
		_ = file.Truncate(f.size)
		_ = file.Sync()
		file.Close()
		return nil, fmt.Errorf("bridge: recording deletions in %s: %w", f.path, err)
	}
	if err := file.Close(); err != nil {
		return nil, fmt.Errorf("bridge: recording deletions in %s: %w", f.path, err)
	}
	// The file exists since OpenDeletionFile; this makes a file created
	// again by O_CREATE durable too.
	if err := SyncDir(filepath.Dir(f.path)); err != nil {
		return nil, fmt.Errorf("bridge: recording deletions: syncing the folder of %s: %w", f.path, err)
	}
	f.size += int64(buf.Len())
	for i := range fresh {
		f.recorded[keyOfDeletion(&fresh[i])] = true
	}
	return fresh, nil
}

// ReadDeletionFile returns the deletions recorded in a deletions file, in
// the order they were recorded; a file that does not exist holds none. An
// unfinished last line (a write under way, or cut short by a crash) is
// not a recorded deletion and is left out.
func ReadDeletionFile(path string) ([]Deletion, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bridge: reading deletions: %w", err)
	}
	defer f.Close()
	var out []Deletion
	if _, err := readDeletions(f, path, func(d *Deletion) { out = append(out, *d) }); err != nil {
		return nil, err
	}
	return out, nil
}

// readDeletions calls fn with each deletion of the whole lines of r and
// returns how many bytes they take.
func readDeletions(r io.Reader, path string, fn func(*Deletion)) (int64, error) {
	br := bufio.NewReader(r)
	var whole int64
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return whole, nil // a last line without its newline is unfinished
		}
		if err != nil {
			return 0, fmt.Errorf("bridge: reading %s: %w", path, err)
		}
		whole += int64(len(line))
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var d Deletion
		if err := json.Unmarshal(line, &d); err != nil {
			return 0, fmt.Errorf("bridge: deletions file %s is damaged at line %d: %w", path, n, err)
		}
		fn(&d)
	}
}
