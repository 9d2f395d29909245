// Package schema embeds the SQL migrations. sqlc reads the same files to
// generate code, so the schema the code was generated for is the schema the
// binary applies. The embed lives here because //go:embed cannot reach "../".
package schema

import (
	"embed"
	"io/fs"
)

//go:embed catalog/*.sql tenant/*.sql
var files embed.FS

// Catalog holds the migrations of data/catalog.db.
func Catalog() fs.FS { return sub("catalog") }

// Tenant holds the migrations of every tenant's file.
func Tenant() fs.FS { return sub("tenant") }

func sub(dir string) fs.FS {
	f, err := fs.Sub(files, dir)
	if err != nil {
		panic(err) // unreachable: dir is a constant embedded above
	}
	return f
}
