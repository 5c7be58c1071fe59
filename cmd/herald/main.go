// Command herald is the Herald push server and its tools: serve, push,
// token, drain, bench and version. This file holds only the command line: flags,
// environment variables, signals.
package main

import (
	"fmt"
	"os"
	"strings"
)

const usage = `herald: a real-time push server.

Usage:
  herald serve [flags]    run a node (herald serve --help)
  herald push [flags]     push a message through a node's API
  herald token [flags]    mint a client token for an app and user
  herald drain [flags]    move a node's clients away, then stop it
  herald bench SCENARIO   load-test a node (herald bench --help)
  herald version          print the version (also --version)

Every serve flag can also be set as HERALD_<NAME> (e.g. --nats-url as
HERALD_NATS_URL); the command line wins over the environment.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	printVersion := func([]string) error { fmt.Println("herald", version()); return nil }
	cmds := map[string]func([]string) error{
		"serve":     serve,
		"push":      pushCmd,
		"token":     tokenCmd,
		"drain":     drainCmd,
		"bench":     benchCmd,
		"version":   printVersion,
		"--version": printVersion,
		"-version":  printVersion,
	}
	cmd, ok := cmds[os.Args[1]]
	if !ok {
		if a := os.Args[1]; a == "-h" || a == "--help" || a == "help" {
			fmt.Print(usage)
			return
		}
		fmt.Fprintf(os.Stderr, "herald: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err := cmd(os.Args[2:]); err != nil {
		// Errors of the SDK and of some packages already start with
		// "herald: "; say it once.
		fmt.Fprintln(os.Stderr, "herald:", strings.TrimPrefix(err.Error(), "herald: "))
		os.Exit(1)
	}
}
