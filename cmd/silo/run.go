package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"strings"
)

const usage = `Silo: one binary, one SQLite file per tenant.

Usage:
  silo serve    [flags]               run the HTTP API
  silo tenants  create SLUG [--name N] [--strategy database|shared|schema|pgshared] | list
  silo tenants  delete SLUG [--server URL --operator-token T] | undelete SLUG
  silo tenants  move SLUG --to database|shared|schema|pgshared [--server URL --operator-token T]
  silo tokens   list SLUG | create SLUG [--name N] | revoke SLUG TOKEN_ID
  silo migrate  [--concurrency N] [--tenants a,b | --canary PCT] [--continue-on-error]
  silo migrate  status | verify | down --to N [--tenants a,b]
  silo restore  SLUG [--at RFC3339 | --txid N] [--to FILE | --server URL --operator-token T] | --all
  silo backup   status [--server URL --operator-token T]
  silo bench    [--tenants N] [--concurrency C] [--duration D] [--mix read|write|mixed] [--compare] [--json]
  silo version

Every command takes --data DIR (default ./data). Run "silo COMMAND -h" for
its flags. Flags that configure the deployment can also be set by their
SILO_* environment variable (--max-open-tenants: SILO_MAX_OPEN_TENANTS);
those naming what one command acts on (--to, --at, --txid, --all,
--tenants, --canary, --name, --strategy) cannot, and silo bench reads none.
`

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func exitCode(err error) int {
	var ue *usageError
	if errors.Is(err, flag.ErrHelp) {
		return 0 // -h asked for the usage, which was printed
	}
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// env is how run reads the environment, so that tests can pass their own.
type env struct {
	getenv         func(string) string
	stdout, stderr io.Writer
}

// run is the whole program: main only wires it to the process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	e := env{getenv: getenv, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &usageError{"no command"}
	}
	cmd, rest := args[0], args[1:]
	if len(rest) > 0 && (cmd == "tenants" || cmd == "tokens" || cmd == "backup") {
		switch rest[0] {
		case "-h", "-help", "--help": // before a subcommand: the overview
			fmt.Fprint(stderr, usage)
			return flag.ErrHelp
		}
	}
	switch cmd {
	case "serve":
		return runServe(ctx, e, rest)
	case "tenants":
		return runTenants(ctx, e, rest)
	case "tokens":
		return runTokens(ctx, e, rest)
	case "migrate":
		return runMigrate(ctx, e, rest)
	case "restore":
		return runRestore(ctx, e, rest)
	case "backup":
		return runBackup(ctx, e, rest)
	case "bench":
		return runBench(ctx, e, rest)
	case "version":
		if len(rest) == 1 && (rest[0] == "-h" || rest[0] == "--help" || rest[0] == "-help") {
			fmt.Fprintln(stderr, "usage: silo version (prints the version and exits)")
			return flag.ErrHelp
		}
		if len(rest) > 0 {
			return &usageError{fmt.Sprintf("version: unexpected argument %q", rest[0])}
		}
		fmt.Fprintln(stdout, "silo", versionString())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return &usageError{fmt.Sprintf("unknown command %q", cmd)}
}

// version is set at release builds (-ldflags "-X main.version=v1.2.3").
var version = "dev"

// versionString is version, and for other builds the commit Go recorded
// (go build in a git checkout does), so that "dev" still names the code.
func versionString() string {
	if version != "dev" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return version
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "+modified"
	}
	return version + " (" + rev + ")"
}

// parseFlags parses args into fs, then fills every flag not given on the
// command line from its SILO_* environment variable (--max-open-tenants is
// SILO_MAX_OPEN_TENANTS). The command line wins over the environment.
func parseFlags(fs *flag.FlagSet, args []string, e env) error {
	fs.SetOutput(e.stderr)
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return err
	} else if err != nil {
		// An unknown flag or a bad value: the flag package has printed the
		// usage; exit 2 like any other command-line mistake.
		return &usageError{err.Error()}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil || notFromEnv[f.Name] {
			return
		}
		v := e.getenv(envName(f.Name))
		if alias := envAliases[f.Name]; v == "" && alias != "" {
			v = e.getenv(alias)
		}
		if v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = &usageError{fmt.Sprintf("%s=%q: %v", envName(f.Name), v, serr)}
			}
		}
	})
	return err
}

// refuseEmpty refuses flags given explicitly as "": an unset shell
// variable (--to "$OUT") must not turn a copy into an in-place restore, or
// an act through a server into one on the local data dir.
func refuseEmpty(fs *flag.FlagSet, names ...string) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		if err == nil && slices.Contains(names, f.Name) && f.Value.String() == "" {
			err = &usageError{fmt.Sprintf("--%s must not be empty (leave it out instead)", f.Name)}
		}
	})
	return err
}

// notFromEnv are the flags that name what one command acts on, not how
// Silo is deployed: the same name means different things to different
// commands (SILO_TO would be restore's output file, a move's target and a
// rollback's version), and a variable left set would redirect a later
// command silently.
var notFromEnv = map[string]bool{
	"to": true, "at": true, "txid": true, "all": true, "tenants": true,
	"canary": true, "name": true, "strategy": true,
}

// envAliases are further variables some flags answer to.
var envAliases = map[string]string{"postgres": "SILO_POSTGRES_URL"}

func envName(flagName string) string {
	return "SILO_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// interspersed lets flags follow positional arguments ("tenants create
// acme --name X"), which the flag package alone does not.
func interspersed(fs *flag.FlagSet, args []string, e env) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args, e); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
