package schema

import (
	"embed"
	"io/fs"
)

// The PostgreSQL migrations: postgres/tenant is created inside each
// `schema` tenant's own schema (and is what sqlc reads), postgres/shared in
// the one schema of the `pgshared` placement, with its Row-Level Security.
//
//go:embed postgres/tenant/*.sql postgres/shared/*.sql
var postgresFiles embed.FS

// PostgresTenant holds the migrations of a schema-per-tenant schema.
func PostgresTenant() fs.FS { return subPostgres("postgres/tenant") }

// PostgresShared holds the migrations of the shared, RLS-protected tables.
func PostgresShared() fs.FS { return subPostgres("postgres/shared") }

func subPostgres(dir string) fs.FS {
	f, err := fs.Sub(postgresFiles, dir)
	if err != nil {
		panic(err) // unreachable: dir is a constant embedded above
	}
	return f
}
