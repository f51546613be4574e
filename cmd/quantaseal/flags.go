package main

import (
	"errors"
	"flag"
	"io"
)

// newFlagSet returns a FlagSet that prints its usage to w and reports errors instead of exiting.
func newFlagSet(name string, w io.Writer, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		io.WriteString(w, "usage: quantaseal "+name+" "+synopsis+"\n")
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; --help becomes errHelp and any other problem a usage error.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return usagef("%v", err)
	}
	return nil
}
