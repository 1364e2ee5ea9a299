// Package s3store keeps a cold tier (sessionlog.ColdStore) in an S3
// bucket (AWS S3, MinIO, or any S3-compatible service), through
// minio-go.
//
// Layout: one bucket for all tenants, each tenant under its own key
// prefix: <prefix><tenant name token>/<object name>, where the tenant
// token is subjects.EncodeTenant's (it never holds '/', so tenants never
// share keys). S3 lists keys in byte order, as the cold tier needs. A Put
// is one PutObject (a segment is written whole or not at all); S3 is
// read-after-write consistent, so a Put is visible to every later Get and
// List. DeleteTenant lists the tenant's keys and removes them in batches.
package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
	"github.com/minio/minio-go/v7"
)

// Store is a cold store in an S3 bucket.
type Store struct {
	client *minio.Client
	bucket string
	prefix string
}

var _ sessionlog.ColdStore = (*Store)(nil)

// New returns a store keeping its objects in bucket, which must exist,
// under keys beginning with prefix (may be empty; end it with '/' to keep
// the store in a folder of the bucket).
func New(client *minio.Client, bucket, prefix string) (*Store, error) {
	if client == nil || bucket == "" {
		return nil, errors.New("s3store: a client and a bucket are required")
	}
	return &Store{client: client, bucket: bucket, prefix: prefix}, nil
}

func (s *Store) tenantPrefix(tenant string) string {
	return s.prefix + subjects.EncodeTenant(tenant) + "/"
}

func checkName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.Contains(name, "//") {
		return fmt.Errorf("s3store: invalid object name %q", name)
	}
	return nil
}

// Put implements sessionlog.ColdStore.
func (s *Store) Put(ctx context.Context, tenant, name string, data []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := s.client.PutObject(ctx, s.bucket, s.tenantPrefix(tenant)+name, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return fmt.Errorf("s3store: storing %q of tenant %q: %w", name, tenant, err)
	}
	return nil
}

// Get implements sessionlog.ColdStore.
func (s *Store) Get(ctx context.Context, tenant, name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	obj, err := s.client.GetObject(ctx, s.bucket, s.tenantPrefix(tenant)+name, minio.GetObjectOptions{})
	var data []byte
	if err == nil {
		data, err = io.ReadAll(obj)
		obj.Close()
	}
	if err != nil {
		if minio.ToErrorResponse(err).Code == minio.NoSuchKey {
			return nil, fmt.Errorf("s3store: %q of tenant %q: %w", name, tenant, sessionlog.ErrNotFound)
		}
		return nil, fmt.Errorf("s3store: reading %q of tenant %q: %w", name, tenant, err)
	}
	return data, nil
}

// List implements sessionlog.ColdStore.
func (s *Store) List(ctx context.Context, tenant, prefix string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel() // stops the listing goroutine when the caller stops
		tp := s.tenantPrefix(tenant)
		for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: tp + prefix, Recursive: true}) {
			if obj.Err != nil {
				yield("", fmt.Errorf("s3store: listing tenant %q: %w", tenant, obj.Err))
				return
			}
			name, ok := strings.CutPrefix(obj.Key, tp)
			if !ok || checkName(name) != nil {
				continue
			}
			if !yield(name, nil) {
				return
			}
		}
		if err := ctx.Err(); err != nil {
			yield("", err)
		}
	}
}

// Delete implements sessionlog.ColdStore.
func (s *Store) Delete(ctx context.Context, tenant, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	err := s.client.RemoveObject(ctx, s.bucket, s.tenantPrefix(tenant)+name, minio.RemoveObjectOptions{})
	if err != nil && minio.ToErrorResponse(err).Code != minio.NoSuchKey {
		return fmt.Errorf("s3store: deleting %q of tenant %q: %w", name, tenant, err)
	}
	return nil
}

// DeleteTenant implements sessionlog.ColdStore.
func (s *Store) DeleteTenant(ctx context.Context, tenant string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	keys := s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.tenantPrefix(tenant), Recursive: true})
	var listErr error
	objs := make(chan minio.ObjectInfo)
	go func() {
		defer close(objs)
		for obj := range keys {
			if obj.Err != nil {
				listErr = obj.Err
				return
			}
			select {
			case objs <- obj:
			case <-ctx.Done():
				return
			}
		}
	}()
	var errs []error
	for rerr := range s.client.RemoveObjects(ctx, s.bucket, objs, minio.RemoveObjectsOptions{}) {
		if rerr.Err != nil && minio.ToErrorResponse(rerr.Err).Code != minio.NoSuchKey {
			errs = append(errs, fmt.Errorf("%s: %w", rerr.ObjectName, rerr.Err))
		}
	}
	if listErr != nil {
		errs = append(errs, listErr)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("s3store: deleting tenant %q: %w", tenant, err)
	}
	return ctx.Err()
}
