package bridge

import (
	"errors"
	"fmt"
	"math"

	"github.com/jetsession/jetsession/sessionlog"
)

// ValidateRow reports, before a row reaches a sink, what no sink could
// store as it is. It applies the limits Append enforces (a valid tenant and
// thread, an ID, a type and metadata within their limits, a time in years 1
// to 9999) and an ordinal a signed 64-bit column holds. The source already
// refuses such events; the bridge checks again because a sink refusing one
// row would hold back its whole batch.
func ValidateRow(r *Row) error {
	if err := sessionlog.ValidateKey(sessionlog.ThreadKey{Tenant: r.Tenant, Thread: r.Thread}); err != nil {
		return err
	}
	if r.Ordinal == 0 || r.Ordinal > math.MaxInt64 {
		return fmt.Errorf("%w: ordinal %d is outside 1 to 2^63-1", errInvalidRow, r.Ordinal)
	}
	e := sessionlog.Event{ID: r.ID, Type: r.Type, Time: r.Time, Meta: r.Meta}
	return sessionlog.ValidateEvent(&e)
}

var errInvalidRow = errors.New("bridge: row cannot be stored")
