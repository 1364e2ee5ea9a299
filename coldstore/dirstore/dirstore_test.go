package dirstore_test

import (
	"testing"

	"github.com/jetsession/jetsession/coldstore/dirstore"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/sessionlog/coldstoretest"
	"github.com/stretchr/testify/require"
)

func TestConformance(t *testing.T) {
	coldstoretest.Run(t, func(t *testing.T) sessionlog.ColdStore {
		s, err := dirstore.New(t.TempDir())
		require.NoError(t, err)
		return s
	})
}
