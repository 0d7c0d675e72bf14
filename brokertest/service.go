package brokertest

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"testing"
	"time"
)

// ServicesEnv is the environment variable that makes a missing service a
// test failure instead of a skip; CI sets it to 1.
const ServicesEnv = "COURIER_TEST_SERVICES"

// Service returns addr (host:port) once a TCP connection to it succeeds. When
// it fails, the engine name is not running there: Service skips the test,
// or fails it when COURIER_TEST_SERVICES=1, as in CI, where the services
// must be up.
func Service(t testing.TB, name, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		_ = c.Close()
		return addr
	}
	if os.Getenv(ServicesEnv) == "1" {
		t.Fatalf("%s is not reachable at %s (%v), and %s=1 requires it", name, addr, err, ServicesEnv)
	}
	t.Skipf("%s is not reachable at %s (%v); start it, or set %s=1 to make this a failure", name, addr, err, ServicesEnv)
	return ""
}

// Unique returns prefix followed by a dash and 12 random hex digits: a name
// for one test run's data on a shared server (a subject or channel
// prefix), so that runs in parallel do not see each other.
func Unique(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return prefix + "-" + hex.EncodeToString(b[:])
}
