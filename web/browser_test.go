package web_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// needTool fails the test when COURIER_TEST_SERVICES=1 (CI) and the tool is
// missing, and skips it otherwise.
func needTool(t *testing.T, name, why string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("COURIER_TEST_SERVICES") == "1" {
		t.Fatalf("%s is not available: %s", name, why)
	}
	t.Skipf("%s is not available (%s); set COURIER_TEST_SERVICES=1 to make this a failure", name, why)
	return ""
}

// TestBrowser runs the browser tests in e2e/ (node --test): the demo page in
// Debian's chromium, driven by playwright-core, against a courier binary
// built from this tree. Each test starts its own `courier serve --dev`.
// Screenshots go to the folder the output names (go test -v shows it).
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests are not run with -short")
	}
	node := needTool(t, "node", "the browser tests run on Node.js (apt-get install nodejs npm)")
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	needTool(t, chromium, "the browser tests drive Debian's chromium (apt-get install chromium), never a downloaded one")

	dir, err := filepath.Abs("e2e")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		npm := needTool(t, "npm", "installing playwright-core needs npm (apt-get install npm)")
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
	}

	// go test puts its own GOROOT/bin first on PATH.
	gobin := needTool(t, "go", "building the server")
	bin := filepath.Join(t.TempDir(), "courier")
	build := exec.Command(gobin, "build", "-o", bin, "github.com/courier-im/courier/cmd/courier")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-concurrency=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "COURIER_BIN="+bin, "CHROMIUM="+chromium)
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	err = cmd.Run()
	if m := regexp.MustCompile(`# screenshots: (\S+)`).FindSubmatch(out.Bytes()); m != nil {
		t.Logf("screenshots: %s", m[1])
	}
	if err != nil {
		t.Fatalf("node --test in %s: %v after %s\n%s", dir, err, time.Since(start).Round(time.Millisecond), out.Bytes())
	}
	t.Logf("browser tests passed in %s", time.Since(start).Round(time.Millisecond))
}
