package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// envName is the environment variable that may set flag name.
func envName(name string) string {
	return "COURIER_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// parse parses args into fs after applying COURIER_* environment variables
// for every flag; flags given on the command line win. Like fs.Parse, it
// reports its errors on fs.Output(), in one line for a bad environment
// variable or a stray argument.
func parse(fs *flag.FlagSet, args []string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", envName(f.Name), v, e)
			}
		}
	})
	if err != nil {
		fmt.Fprintf(fs.Output(), "%s: %v\n", fs.Name(), err)
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
		fmt.Fprintf(fs.Output(), "%s: %v\n", fs.Name(), err)
		return err
	}
	return nil
}
