package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/courier-im/courier/jwt"
)

func token(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("courier token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	secret := fs.String("secret", "", "the server's JWT secret (env COURIER_SECRET, or COURIER_JWT_SECRET)")
	user := fs.String("user", "", "user id to put in sub (required)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	rooms := fs.String("rooms", "", "comma-separated rooms claim, names or prefix* patterns (default: no claim)")
	if err := parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *secret == "" {
		*secret = os.Getenv("COURIER_JWT_SECRET")
	}
	if *secret == "" || *user == "" {
		fmt.Fprintln(stderr, "courier token: --secret and --user are required")
		return 2
	}
	if *ttl <= 0 {
		fmt.Fprintln(stderr, "courier token: --ttl must be positive")
		return 2
	}
	var claim []string
	if *rooms != "" {
		claim = strings.Split(*rooms, ",")
	}
	t, err := jwt.Mint([]byte(*secret), *user, *ttl, claim)
	if err != nil {
		fmt.Fprintln(stderr, "courier token:", err)
		return 1
	}
	fmt.Fprintln(stdout, t)
	return 0
}
