package server_test

import (
	"testing"

	"github.com/silohq/silo/internal/pg"
	"github.com/silohq/silo/internal/pg/pgtest"
)

const pgSkip = pgtest.Skip

// havePostgres reports whether the PostgreSQL placements can be tested.
func havePostgres() bool { return pgtest.Available() }

// placements lists the placements to run a table-driven test over: the
// SQLite ones always, the PostgreSQL ones with a server to test against.
func placements(t *testing.T) []string {
	if havePostgres() {
		return []string{"database", "shared", "schema", "pgshared"}
	}
	t.Log(pgSkip)
	return []string{"database", "shared"}
}

func testPostgres(t *testing.T) *pg.Engine { return pgtest.Engine(t) }
