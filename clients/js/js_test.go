// Package js_test runs the tests of the TypeScript client (clients/js)
// from go test: a Go check that the committed browser bundle is up to date
// (no Node needed), and the Node test suite against a freshly built courier
// binary.
package js_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// bundlePrefix starts the first line of web/static/courier.js (build.mjs).
const bundlePrefix = "// courier client bundle, built from clients/js/src sha256:"

// inputHash recomputes build.mjs's inputHash: the sha256 of, for each input
// file (src/**, build.mjs, tsconfig.json) in sorted order, the line
// "file <path> <sha256 hex of its bytes>\n", then "esbuild <version>\n" with
// the version package.json pins.
func inputHash(t *testing.T) string {
	t.Helper()
	var files []string
	err := filepath.WalkDir("src", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files = append(files, filepath.ToSlash(p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "build.mjs", "tsconfig.json")
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(filepath.FromSlash(f))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		fmt.Fprintf(h, "file %s %s\n", f, hex.EncodeToString(sum[:]))
	}
	var pkg struct {
		DevDependencies map[string]string `json:"devDependencies"`
	}
	b, err := os.ReadFile("package.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		t.Fatalf("package.json: %v", err)
	}
	v := pkg.DevDependencies["esbuild"]
	if v == "" {
		t.Fatal("package.json pins no esbuild version")
	}
	fmt.Fprintf(h, "esbuild %s\n", v)
	return hex.EncodeToString(h.Sum(nil))
}

// TestBundleFresh fails when web/static/courier.js was not rebuilt after a
// change to the client's sources or build configuration. It needs no Node.
func TestBundleFresh(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "web", "static", "courier.js"))
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := bytes.Cut(b, []byte("\n"))
	got, ok := strings.CutPrefix(string(first), bundlePrefix)
	if !ok {
		t.Fatalf("web/static/courier.js does not start with %q: run `npm run build` in clients/js", bundlePrefix)
	}
	if want := inputHash(t); got != want {
		t.Fatalf("web/static/courier.js is stale: run `npm run build` in clients/js (bundle built from sha256:%s, sources are sha256:%s)", got, want)
	}
}

// needTool fails the test when COURIER_TEST_SERVICES=1 (CI) and the tool is
// missing, and skips it otherwise.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("COURIER_TEST_SERVICES") == "1" {
		t.Fatalf("%s is not on PATH: the JS client's tests (clients/js) need Node.js >= 20 and npm (apt-get install nodejs npm)", name)
	}
	t.Skipf("%s is not on PATH; set COURIER_TEST_SERVICES=1 to make this a failure", name)
	return ""
}

// TestNode builds courier, builds the client (tsc into dist/; it does not
// touch the committed bundle, which the Node suite compares with a fresh
// build of its own) and runs the Node test suite (node --test) against the
// real server.
func TestNode(t *testing.T) {
	node := needTool(t, "node")
	npm := needTool(t, "npm")
	if testing.Short() {
		t.Skip("the Node suite takes a while; not with -short")
	}
	out, err := exec.Command(node, "-p", "process.versions.node.split('.')[0]").Output()
	if err != nil {
		t.Fatalf("node -p: %v", err)
	}
	if major, _ := strconv.Atoi(strings.TrimSpace(string(out))); major < 20 {
		if os.Getenv("COURIER_TEST_SERVICES") == "1" {
			t.Fatalf("node %d is too old: the JS client needs Node.js >= 20", major)
		}
		t.Skipf("node %d is too old: the JS client needs Node.js >= 20", major)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, buf.String())
		}
		return buf.String()
	}

	bin := filepath.Join(t.TempDir(), "courier")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/courier")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/courier: %v\n%s", err, out)
	}

	if _, err := os.Stat(filepath.Join("node_modules", ".package-lock.json")); err != nil {
		run(npm, "ci", "--no-audit", "--no-fund")
	}
	run(npm, "run", "build:lib")

	tests, err := filepath.Glob(filepath.Join("test", "*.test.mjs"))
	if err != nil || len(tests) == 0 {
		t.Fatalf("no test/*.test.mjs: %v", err)
	}
	cmd := exec.CommandContext(ctx, node, append([]string{"--test", "--test-reporter=tap"}, tests...)...)
	cmd.Env = append(os.Environ(), "COURIER_BIN="+bin)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	start := time.Now()
	err = cmd.Run()
	t.Logf("node --test: %d files in %v", len(tests), time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Errorf("node --test: %v\n%s", err, buf.String())
		return
	}
	// Name the passing tests, for -v.
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "ok ") || strings.HasPrefix(l, "# tests") || strings.HasPrefix(l, "# pass") {
			t.Log(l)
		}
	}
}
