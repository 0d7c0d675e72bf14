package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	cc "github.com/courier-im/courier/client"
)

// listen prints every message frame the user gets as one JSON line until
// SIGINT or SIGTERM, reconnecting and resuming when the connection breaks.
func listen(args []string, stdout, stderr io.Writer) int {
	const name = "courier listen"
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := addClientFlags(fs)
	since := fs.Uint64("since", 0, "replay the stored messages after this inbox seq first")
	if err := parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := cf.dial(cc.Options{Since: *since})
	if err != nil {
		return fail(stderr, name, err)
	}
	defer c.Close()
	fmt.Fprintf(stderr, "%s: listening as %s\n", name, c.User())
	for {
		select {
		case <-ctx.Done():
			return 0
		case m, ok := <-c.Messages():
			if !ok {
				return fail(stderr, name, c.Err())
			}
			if _, err := fmt.Fprintf(stdout, "%s\n", m.Frame); err != nil {
				return fail(stderr, name, err)
			}
		}
	}
}
