// Command courier runs the courier messaging server and its tools.
//
//	courier serve --dev                 run with the embedded defaults
//	courier serve --addr ... --data ... --jwt-secret ... --api-key ...
//	courier token --secret S --user alice [--ttl 1h]
//	courier listen --url ws://HOST:PORT --token T
//	courier send --url ws://HOST:PORT --token T --to bob '{"text":"hi"}'
package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `courier delivers messages to specific users over WebSocket.

Usage:
  courier serve [flags]    run the server (courier serve --help for flags)
  courier token [flags]    print a signed token for a user
  courier listen [flags]   print a user's incoming messages, one JSON line each
  courier send [flags] JSON  send a message as a user and print the ack
  courier version          print the version

Every flag can also be set with an environment variable: --jwt-secret is
COURIER_JWT_SECRET, --max-message is COURIER_MAX_MESSAGE, and so on.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "token":
		return token(args[1:], stdout, stderr)
	case "listen":
		return listen(args[1:], stdout, stderr)
	case "send":
		return send(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "courier", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "courier: unknown command %q\n\n%s", args[0], usage)
	return 2
}
