// Command silo serves a multi-tenant JSON API in which every tenant's data
// lives in its own SQLite file, and carries the operator's tools for it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	// Litestream logs through slog's default logger: keep its chatter
	// ("post-restore integrity check passed") out of the commands' output,
	// and its warnings in Silo's format. Silo's own loggers are passed in.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
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
