// Package dirstore keeps a cold tier (sessionlog.ColdStore) in a local
// folder: one subfolder per tenant, one file per object.
//
// Layout: <root>/<tenant name token>/<part>/.../<last part>.seg, where the
// tenant token is subjects.EncodeTenant's and each '/'-separated part of
// an object's name is escaped the same way (a-z, 0-9 and '-' kept, every
// other byte as '_' and two lowercase hex digits), so that no two names
// share a path even on a case-insensitive file system, and no part is "."
// or "..". A part longer than 240 bytes is split into folders of 240
// bytes, each but the last marked with a trailing '+'. Files are written
// to a temporary file, synced and renamed into place, so an object is
// either absent or whole. Use it on one machine (or a shared file system
// with atomic renames); it suits development and single-node deployments.
package dirstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
)

const (
	ext      = ".seg"
	maxPart  = 240
	contMark = "+"
)

// Store is a cold store in a folder.
type Store struct {
	root string
}

var _ sessionlog.ColdStore = (*Store)(nil)

// New returns a store in root, creating the folder if needed.
func New(root string) (*Store, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("dirstore: %w", err)
	}
	return &Store{root: root}, nil
}

func (s *Store) tenantDir(tenant string) string {
	return filepath.Join(s.root, subjects.EncodeTenant(tenant))
}

func escape(p string) string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('_')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0x0f])
	}
	return b.String()
}

// partPath returns the path elements of one name part.
func partPath(p string) []string {
	e := escape(p)
	var out []string
	for len(e) > maxPart {
		out = append(out, e[:maxPart]+contMark)
		e = e[maxPart:]
	}
	return append(out, e)
}

func checkName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.Contains(name, "//") {
		return fmt.Errorf("dirstore: invalid object name %q", name)
	}
	return nil
}

// dirOf returns the folder path elements of the complete parts.
func dirOf(parts []string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, partPath(p)...)
	}
	return out
}

func (s *Store) path(tenant, name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	parts := strings.Split(name, "/")
	elems := append([]string{s.tenantDir(tenant)}, dirOf(parts[:len(parts)-1])...)
	last := partPath(parts[len(parts)-1])
	elems = append(elems, last[:len(last)-1]...)
	elems = append(elems, last[len(last)-1]+ext)
	return filepath.Join(elems...), nil
}

// Put implements sessionlog.ColdStore.
func (s *Store) Put(ctx context.Context, tenant, name string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	path, err := s.path(tenant, name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("dirstore: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("dirstore: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("dirstore: storing %q of tenant %q: %w", name, tenant, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Get implements sessionlog.ColdStore.
func (s *Store) Get(ctx context.Context, tenant, name string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path, err := s.path(tenant, name)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("dirstore: %q of tenant %q: %w", name, tenant, sessionlog.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("dirstore: %w", err)
	}
	return data, nil
}

// unescape reverses escape, refusing what escape cannot produce.
func unescape(e string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(e); i++ {
		c := e[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-':
			b.WriteByte(c)
		case c == '_' && i+2 < len(e):
			hi, lo := unhex(e[i+1]), unhex(e[i+2])
			if hi < 0 || lo < 0 {
				return "", false
			}
			b.WriteByte(byte(hi<<4 | lo))
			i += 2
		default:
			return "", false
		}
	}
	return b.String(), e != ""
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}

// List implements sessionlog.ColdStore, walking only the folder of the
// prefix's complete parts.
func (s *Store) List(ctx context.Context, tenant, prefix string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		if err := ctx.Err(); err != nil {
			yield("", err)
			return
		}
		base := s.tenantDir(tenant)
		var known []string // complete parts of the prefix
		if i := strings.LastIndex(prefix, "/"); i > 0 {
			known = strings.Split(prefix[:i], "/")
			base = filepath.Join(append([]string{base}, dirOf(known)...)...)
		}
		var names []string
		err := filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if d.IsDir() || !strings.HasSuffix(d.Name(), ext) {
				return nil
			}
			rel, err := filepath.Rel(base, path)
			if err != nil {
				return err
			}
			name, ok := decodePath(strings.TrimSuffix(filepath.ToSlash(rel), ext))
			if !ok {
				return nil // not written by this store
			}
			if len(known) > 0 {
				name = strings.Join(known, "/") + "/" + name
			}
			if strings.HasPrefix(name, prefix) {
				names = append(names, name)
			}
			return nil
		})
		if err != nil {
			yield("", fmt.Errorf("dirstore: listing tenant %q: %w", tenant, err))
			return
		}
		slices.Sort(names)
		for _, n := range names {
			if !yield(n, nil) {
				return
			}
		}
	}
}

// decodePath turns relative path elements back into a name.
func decodePath(rel string) (string, bool) {
	var parts []string
	var cur strings.Builder
	for _, el := range strings.Split(rel, "/") {
		if strings.HasSuffix(el, contMark) {
			cur.WriteString(strings.TrimSuffix(el, contMark))
			continue
		}
		cur.WriteString(el)
		p, ok := unescape(cur.String())
		if !ok {
			return "", false
		}
		parts = append(parts, p)
		cur.Reset()
	}
	if cur.Len() > 0 {
		return "", false
	}
	return strings.Join(parts, "/"), true
}

// Delete implements sessionlog.ColdStore.
func (s *Store) Delete(ctx context.Context, tenant, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	path, err := s.path(tenant, name)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("dirstore: deleting %q of tenant %q: %w", name, tenant, err)
	}
	return nil
}

// DeleteTenant implements sessionlog.ColdStore: the tenant's folder is
// renamed out of the way at once, then removed.
func (s *Store) DeleteTenant(ctx context.Context, tenant string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	trash, err := os.MkdirTemp(s.root, ".deleting-*")
	if err != nil {
		return fmt.Errorf("dirstore: %w", err)
	}
	defer os.RemoveAll(trash)
	err = os.Rename(s.tenantDir(tenant), filepath.Join(trash, "t"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("dirstore: deleting tenant %q: %w", tenant, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("dirstore: deleting tenant %q: %w", tenant, err)
	}
	return nil
}
