package main

import (
	"flag"
	"io"
	"os"
	"strings"
	"testing"
)

// Every flag of courier serve is in docs/api.md's table, with its
// environment variable, so the reference cannot fall behind the binary.
func TestServeFlagsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	fs, _ := serveFlags(io.Discard)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		row := "| `--" + f.Name + "` | `" + envName(f.Name) + "` |"
		if !strings.Contains(string(doc), row) {
			t.Errorf("docs/api.md has no row starting %s", row)
		}
	})
	if n < 20 {
		t.Fatalf("only %d flags visited", n)
	}
}
