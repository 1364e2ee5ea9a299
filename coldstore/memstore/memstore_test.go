package memstore_test

import (
	"testing"

	"github.com/jetsession/jetsession/coldstore/memstore"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/sessionlog/coldstoretest"
)

func TestConformance(t *testing.T) {
	coldstoretest.Run(t, func(t *testing.T) sessionlog.ColdStore { return memstore.New() })
}
