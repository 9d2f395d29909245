// Command silo serves a multi-tenant JSON API in which every tenant's data
// lives in its own SQLite file, and carries the operator's tools for it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); errors.Is(err, flag.ErrHelp) {
		os.Exit(0) // -h: the usage is printed; nothing failed
	} else if err != nil {
		// Silo's own errors already start with "silo: ".
		msg := err.Error()
		if !strings.HasPrefix(msg, "silo: ") {
			msg = "silo: " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(exitCode(err))
	}
}
