package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"

	cc "github.com/courier-im/courier/client"
)

// clientFlags are the flags of the commands that connect as a user.
type clientFlags struct {
	url, token *string
}

func addClientFlags(fs *flag.FlagSet) clientFlags {
	return clientFlags{
		url:   fs.String("url", "ws://127.0.0.1:8080", "the server's WebSocket URL, ws://HOST:PORT (the /ws path is added)"),
		token: fs.String("token", "", "the user's token, from courier token (required)"),
	}
}

// dial connects as the flags say, within 10 s.
func (f clientFlags) dial(opts cc.Options) (*cc.Client, error) {
	if *f.token == "" {
		return nil, errUsage("--token is required (or COURIER_TOKEN)")
	}
	opts.Token = *f.token
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := cc.Dial(ctx, *f.url, opts)
	if err != nil && errors.Is(err, syscall.ECONNREFUSED) {
		return nil, fmt.Errorf("cannot connect to %s: connection refused", *f.url)
	}
	return c, err
}

// errUsage is a usage error: exit code 2.
type errUsage string

func (e errUsage) Error() string { return string(e) }

// fail prints err as one line for command name and returns the exit code.
func fail(stderr io.Writer, name string, err error) int {
	var ce *cc.Error
	var u errUsage
	msg := err.Error()
	code := 1
	switch {
	case errors.As(err, &u):
		code = 2
	case errors.Is(err, cc.ErrUnauthorized):
		msg = "the server refused the token (HTTP 401): missing, bad or expired"
	case errors.As(err, &ce):
		msg = fmt.Sprintf("the server answered %s: %s", ce.Code, ce.Message)
	}
	msg = strings.TrimPrefix(msg, "courier: ")
	msg = strings.Join(strings.Fields(msg), " ") // one line
	fmt.Fprintf(stderr, "%s: %s\n", name, msg)
	return code
}

// send sends one message and prints its ack as one JSON line.
func send(args []string, stdout, stderr io.Writer) int {
	const name = "courier send"
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: courier send --url ws://HOST:PORT --token T --to USER [--event E] [--volatile] [--key K] JSON\n\nFlags:\n")
		fs.PrintDefaults()
	}
	cf := addClientFlags(fs)
	to := fs.String("to", "", "the recipient: a user id, or conn:<connection id> (required)")
	event := fs.String("event", "message", "the event name")
	volatile := fs.Bool("volatile", false, "live only: not stored, not replayed")
	key := fs.String("key", "", "idempotency key (default: a random one)")

	// The JSON argument may stand among the flags; parse sees the flags only.
	scan := flag.NewFlagSet(name, flag.ContinueOnError)
	scan.SetOutput(io.Discard)
	fs.VisitAll(func(f *flag.Flag) { scan.Var(f.Value, f.Name, f.Usage) })
	var data string
	flagArgs := args
	if scan.Parse(args) == nil && scan.NArg() > 0 {
		rest := scan.Args()
		flagArgs = append(append([]string(nil), args[:len(args)-len(rest)]...), rest[1:]...)
		data = rest[0]
	}
	if err := parse(fs, flagArgs); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch {
	case *to == "":
		return fail(stderr, name, errUsage("--to is required"))
	case data == "":
		return fail(stderr, name, errUsage(`the message data is missing: give it as JSON, e.g. '{"text":"hi"}'`))
	case !json.Valid([]byte(data)):
		var v any
		err := json.Unmarshal([]byte(data), &v)
		return fail(stderr, name, errUsage(fmt.Sprintf("the message data is not valid JSON: %v", err)))
	}
	c, err := cf.dial(cc.Options{})
	if err != nil {
		return fail(stderr, name, err)
	}
	defer c.Close()
	opts := []cc.SendOption{}
	if *volatile {
		opts = append(opts, cc.Volatile())
	}
	if *key != "" {
		opts = append(opts, cc.Key(*key))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := c.Send(ctx, *to, *event, json.RawMessage(data), opts...)
	if err != nil {
		return fail(stderr, name, err)
	}
	b, _ := json.Marshal(ack)
	fmt.Fprintf(stdout, "%s\n", b)
	return 0
}
