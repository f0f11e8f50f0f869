package admin

import (
	"testing"
	"time"

	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/ciba/store/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// newService returns the admin use cases over the test binary's real Redis,
// under a key prefix of the test's own.
func newService(t *testing.T) *Service {
	t.Helper()
	r := redistest.Real(t)
	return &Service{DB: store.Open(r.Client, r.Prefix), Now: time.Now}
}
