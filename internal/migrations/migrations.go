// Package migrations reads a store's embedded schema migrations: files
// schema/NNNN_name.sql, applied in name order, file i taking the schema from
// version i-1 to i. Add files; never edit one that has shipped.
package migrations

import (
	"fmt"
	"io/fs"
	"sort"
)

// Read returns the SQL of each file matching schema/*.sql in fsys, in name
// order: element i is migration i+1.
func Read(fsys fs.FS) ([]string, error) {
	names, err := fs.Glob(fsys, "schema/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(names)
	out := make([]string, len(names))
	for i, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", n, err)
		}
		out[i] = string(b)
	}
	return out, nil
}
