package tenants_test

import (
	"testing"
	"time"

	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/tenants"
)

// TestParsePoint: a restore point given explicitly must be one. The zero
// time and txid 0 are how "the latest" is passed on, so taking
// "0001-01-01T00:00:00Z" or {"txid":0} as given restored the newest state
// (200) where any other time the backup lacks is refused.
func TestParsePoint(t *testing.T) {
	str := func(s string) *string { return &s }
	num := func(n uint64) *uint64 { return &n }
	past := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	for _, tc := range []struct {
		at   *string
		txid *uint64
		ok   bool
		when time.Time
		n    uint64
	}{
		{ok: true}, // neither: the latest
		{at: str(past.Format(time.RFC3339)), ok: true, when: past},
		{at: str(past.In(time.FixedZone("", -5*3600)).Format(time.RFC3339)), ok: true, when: past},
		{txid: num(7), ok: true, n: 7},
		{at: str("0001-01-01T00:00:00Z")},
		{at: str("1969-12-31T23:59:59Z")},
		{at: str("2999-01-01T00:00:00Z")},
		{at: str("")},
		{at: str("yesterday")},
		{txid: num(0)},
		{at: str(past.Format(time.RFC3339)), txid: num(7)},
	} {
		when, n, err := tenants.ParsePoint(tc.at, tc.txid)
		if !tc.ok {
			if silo.ErrorCode(err) != silo.EINVALID {
				t.Errorf("at %v txid %v: %v, want invalid_request", deref(tc.at), tc.txid, err)
			}
			continue
		}
		if err != nil || !when.Equal(tc.when) || n != tc.n {
			t.Errorf("at %v txid %v: %v %d %v, want %v %d", deref(tc.at), tc.txid, when, n, err, tc.when, tc.n)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "<none>"
	}
	return *s
}
