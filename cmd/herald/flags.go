package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
)

// newFlags returns a flag set whose --help prints the command's summary and
// every flag.
func newFlags(name, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet("herald "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: herald %s [flags]\n\n%s\n\nFlags:\n", name, summary)
		printFlags(fs)
	}
	return fs
}

// printFlags lists fs's flags as the docs write them, with two dashes
// ("--addr string"), each with its usage and a default that is not the
// zero value. The flag package accepts both one and two dashes.
func printFlags(fs *flag.FlagSet) {
	out := fs.Output()
	fs.VisitAll(func(f *flag.Flag) {
		kind, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if kind != "" {
			line += " " + kind
		}
		line += "\n    \t" + strings.ReplaceAll(usage, "\n", "\n    \t")
		switch f.DefValue {
		case "", "0", "0s", "false":
		default:
			if kind == "string" {
				line += fmt.Sprintf(" (default %q)", f.DefValue)
			} else {
				line += fmt.Sprintf(" (default %s)", f.DefValue)
			}
		}
		fmt.Fprintln(out, line)
	})
}

// parse reads the command line, then fills each flag it did not set from
// HERALD_<NAME>, if that variable exists. env names the flags that read the
// environment; none named means all. It returns the names set either way.
func parse(fs *flag.FlagSet, args []string, env ...string) (map[string]bool, error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []string
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || len(env) > 0 && !slices.Contains(env, f.Name) {
			return
		}
		name := "HERALD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", name, err))
			}
			set[f.Name] = true
		}
	})
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return set, nil
}

// listFlag is a comma-separated or repeated string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
