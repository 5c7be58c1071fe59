package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// newFlags returns a flag set whose --help prints the command's summary and
// every flag.
func newFlags(name, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet("herald "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: herald %s [flags]\n\n%s\n\nFlags (each also as HERALD_<NAME>):\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

// parse applies HERALD_<NAME> variables, then the command line. It returns
// the names set either way.
func parse(fs *flag.FlagSet, args []string) (map[string]bool, error) {
	set := map[string]bool{}
	var errs []string
	fs.VisitAll(func(f *flag.Flag) {
		env := "HERALD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", env, err))
			}
			set[f.Name] = true
		}
	})
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
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
