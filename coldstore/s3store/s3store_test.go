package s3store_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jetsession/jetsession/coldstore/s3store"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/sessionlog/coldstoretest"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/require"
)

var seq atomic.Int64

// newClient starts an in-process S3 (gofakes3) with one bucket.
func newClient(t *testing.T) (*minio.Client, string) {
	t.Helper()
	ts := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(ts.Close)
	client, err := minio.New(strings.TrimPrefix(ts.URL, "http://"), &minio.Options{
		Creds:        credentials.NewStaticV4("key", "secret", ""),
		Secure:       false,
		BucketLookup: minio.BucketLookupPath,
	})
	require.NoError(t, err)
	bucket := fmt.Sprintf("cold-%d", seq.Add(1))
	require.NoError(t, client.MakeBucket(context.Background(), bucket, minio.MakeBucketOptions{}))
	return client, bucket
}

func TestConformance(t *testing.T) {
	coldstoretest.Run(t, func(t *testing.T) sessionlog.ColdStore {
		client, bucket := newClient(t)
		s, err := s3store.New(client, bucket, "")
		require.NoError(t, err)
		return s
	})
}

func TestConformanceUnderAPrefix(t *testing.T) {
	client, bucket := newClient(t)
	coldstoretest.Run(t, func(t *testing.T) sessionlog.ColdStore {
		// Stores under distinct prefixes of one bucket never meet.
		s, err := s3store.New(client, bucket, fmt.Sprintf("env-%d/", seq.Add(1)))
		require.NoError(t, err)
		return s
	})
}
