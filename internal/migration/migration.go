// Package migration reads numbered migration files in goose's format
// ("-- +goose Up" / "-- +goose Down" sections, which sqlc reads too). Both
// engines' migrators use it; each applies the files its own way.
package migration

import (
	"bufio"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// File is one numbered migration: its Up and Down scripts. Each script runs
// as one multi-statement batch, so StatementBegin/End need no handling.
type File struct {
	Version int64
	Name    string
	Up      string
	Down    string
}

// Parse reads the numbered .sql files of fsys, in ascending order.
func Parse(fsys fs.FS) ([]File, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	var files []File
	seen := map[int64]string{}
	for _, n := range names {
		num, _, ok := strings.Cut(n, "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("migration %q: name must start with a positive number and '_'", n)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %q and %q share version %d", other, n, v)
		}
		seen[v] = n
		src, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		up, down, err := split(string(src))
		if err != nil {
			return nil, fmt.Errorf("migration %q: %w", n, err)
		}
		files = append(files, File{Version: v, Name: n, Up: up, Down: down})
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no migrations")
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Version < files[j].Version })
	return files, nil
}

// split returns the Up and Down sections of a goose-format file.
func split(src string) (up, down string, err error) {
	var cur *strings.Builder
	var upB, downB strings.Builder
	sc := bufio.NewScanner(strings.NewReader(src))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if d, ok := strings.CutPrefix(strings.TrimSpace(line), "-- +goose"); ok {
			switch f := strings.Fields(d); {
			case len(f) > 0 && f[0] == "Up":
				cur = &upB
			case len(f) > 0 && f[0] == "Down":
				cur = &downB
			case len(f) > 0 && (f[0] == "StatementBegin" || f[0] == "StatementEnd"):
			default:
				return "", "", fmt.Errorf("unsupported directive %q", line)
			}
			continue
		}
		if cur != nil {
			cur.WriteString(line)
			cur.WriteByte('\n')
		}
	}
	if strings.TrimSpace(upB.String()) == "" {
		return "", "", fmt.Errorf("no '-- +goose Up' section")
	}
	return upB.String(), downB.String(), sc.Err()
}
