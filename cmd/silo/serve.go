package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/silohq/silo/internal/server"
	"github.com/silohq/silo/internal/silo"
)

// serveLimits are serve's bounds against slow clients and floods. They
// live here rather than in Config because only serve uses them.
type serveLimits struct {
	ReadHeaderTimeout time.Duration
	SignupRate        int
	TenantRate        int
	TenantMaxInflight int
}

func (l *serveLimits) flags(fs *flag.FlagSet) {
	fs.DurationVar(&l.ReadHeaderTimeout, "read-header-timeout", 5*time.Second, "close a connection whose request headers take longer than this (slow clients)")
	fs.IntVar(&l.SignupRate, "signup-rate", 30, "signups per minute per client IP (the TCP peer; X-Forwarded-For is not trusted); 0: no limit")
	fs.IntVar(&l.TenantRate, "tenant-rate", 0, "requests per second per tenant; 0: no limit")
	fs.IntVar(&l.TenantMaxInflight, "tenant-max-inflight", 64, "concurrent requests per tenant; more get 429 rate_limited; 0: no bound")
}

func (l *serveLimits) check() error {
	switch {
	case l.ReadHeaderTimeout <= 0:
		return &usageError{"--read-header-timeout must be positive"}
	case l.SignupRate < 0, l.TenantRate < 0, l.TenantMaxInflight < 0:
		return &usageError{"--signup-rate, --tenant-rate and --tenant-max-inflight must not be negative"}
	}
	return nil
}

func runServe(ctx context.Context, e env, args []string) error {
	var c Config
	var lim serveLimits
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.dataFlags(fs)
	c.storeFlags(fs)
	fs.StringVar(&c.Addr, "addr", ":8080", "listen address HOST:PORT")
	fs.StringVar(&c.BaseDomain, "base-domain", "localhost", "tenants are served at <slug>.<base-domain>")
	fs.StringVar(&c.OperatorToken, "operator-token", "", "bearer token of the operator API (/api/operator/...); unset turns it off")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long SIGINT/SIGTERM waits for in-flight requests")
	lim.flags(fs)
	c.backupFlags(fs)
	fs.DurationVar(&c.DeletedRetention, "deleted-retention", 7*24*time.Hour, "how long a deleted tenant's row and backup are kept (silo tenants undelete)")
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	c.Backup = !c.NoBackup
	c.PostgresLazy = true // PostgreSQL down must not take the other tenants down
	if err := lim.check(); err != nil {
		return err
	}
	switch {
	case c.ShutdownTimeout <= 0:
		// Zero would leave no time for the final sync of the catalog and
		// shared.db to their replicas.
		return &usageError{"--shutdown-timeout must be positive"}
	case c.DeletedRetention <= 0:
		// Zero or less purges every deleted tenant's backup at start, for
		// good: never what a typo should do.
		return &usageError{"--deleted-retention must be positive (it is how long undelete stays possible)"}
	case !validDomain(c.BaseDomain):
		return &usageError{fmt.Sprintf("--base-domain %q is not a domain name (such as example.com or localhost, without a port)", c.BaseDomain)}
	}
	if err := c.check(); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("serve: unexpected argument %q", fs.Arg(0))}
	}
	log, err := c.logger(e)
	if err != nil {
		return err
	}
	// Bound first: a wrong --addr (a port in use, out of range) must fail
	// before anything is made on disk. Connections that arrive while the
	// fleet opens wait in the listen queue.
	if _, port, err := net.SplitHostPort(c.Addr); err != nil {
		return &usageError{fmt.Sprintf("--addr %q: want HOST:PORT (%v)", c.Addr, err)}
	} else if _, err := net.LookupPort("tcp", port); err != nil {
		return &usageError{fmt.Sprintf("--addr %q: %v", c.Addr, err)}
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("--addr %s: %w", c.Addr, err)
	}
	defer ln.Close()
	if err := os.MkdirAll(c.Data, 0o700); err != nil {
		return err
	}
	unlock, err := lockDataDir(c.Data)
	if err != nil {
		return fmt.Errorf("%s: %w", c.Data, err)
	}
	defer unlock()
	a, err := openApp(ctx, &c, log)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.ShutdownTimeout)
		defer cancel()
		if err := a.Close(cctx); err != nil {
			log.Error("close", "err", err)
		}
	}()
	// Background work stops and is waited for before a.Close (deferred
	// above, so run after this) closes what it uses.
	var bg sync.WaitGroup
	bgctx, stopBG := context.WithCancel(ctx)
	defer func() {
		stopBG()
		bg.Wait()
	}()
	if err := a.tenants.Sweep(ctx); err != nil {
		log.Error("startup sweep", "err", err)
	}
	if a.backup != nil {
		// Tenants open at a crash may be a few transactions behind in
		// their replicas: bring them up to date before serving.
		dirty, err := a.catalog.BackupDirty(ctx)
		if err == nil && len(dirty) > 0 {
			log.Info("backup: syncing tenants that were open at the last stop", "tenants", len(dirty))
			err = a.store.RecoverBackups(ctx, dirty)
		}
		if err != nil {
			log.Error("backup: crash recovery", "err", err)
		}
		// The catalog and shared.db are always open, so they are never in
		// that list: after a crash their replicas may lag too. Bring them
		// up to date before serving, not at Litestream's next tick: a crash
		// right after the start would otherwise leave the gap open.
		for _, p := range []string{"catalog.db", "shared.db"} {
			if path := filepath.Join(c.Data, p); a.backup.Registered(path) {
				if _, err := a.backup.Sync(ctx, path); err != nil {
					log.Warn("backup: sync at start", "file", p, "err", err)
				}
			}
		}
		bg.Go(func() { a.backup.RunMaintenance(bgctx, 0) })
		// Tenants written while backups were off: their replicas catch
		// up after the start, not before it (there may be many, each a
		// full snapshot, and none lost an acknowledged write).
		bg.Go(func() {
			ids, err := a.catalog.BackupUnbacked(bgctx)
			if err == nil && len(ids) > 0 {
				log.Info("backup: syncing tenants written while backups were off", "tenants", len(ids))
				err = a.store.RecoverBackups(bgctx, ids)
			}
			if err != nil && bgctx.Err() == nil {
				log.Error("backup: sync of tenants written while backups were off", "err", err)
			}
		})
	}
	bg.Go(func() { purgeLoop(bgctx, a, c.DeletedRetention) })

	handler := a.handler(server.Config{
		BaseDomain:        c.BaseDomain,
		OperatorToken:     c.OperatorToken,
		SignupRate:        lim.SignupRate,
		TenantRate:        lim.TenantRate,
		TenantMaxInflight: lim.TenantMaxInflight,
	})
	srv := &http.Server{
		Handler: handler,
		// Bounds that keep slow or idle clients from holding connections:
		// headers must arrive within ReadHeaderTimeout (slow loris), a
		// whole request, body included (at most 1 MiB), within
		// ReadTimeout, and the answer must be written within WriteTimeout,
		// which also caps a handler stuck behind a busy tenant file.
		// Idle keep-alive connections close after IdleTimeout. Headers are
		// capped at 64 KiB (net/http's default is 1 MiB).
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	fmt.Fprintf(e.stdout, "silo: listening on http://%s (tenants at <slug>.%s)\n", ln.Addr(), c.BaseDomain)
	log.Info("serving", "addr", ln.Addr().String(), "data", c.Data, "max_open_tenants", c.MaxOpenTenants)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: draining requests")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// purgeLoop forgets, every hour, the tenants deleted longer ago than
// retention: their backups, then their catalog rows. It also removes the
// temporary files a crash left that the start found too young to remove.
func purgeLoop(ctx context.Context, a *app, retention time.Duration) {
	var drop func(context.Context, silo.TenantID) error
	if a.backup != nil {
		drop = func(ctx context.Context, id silo.TenantID) error {
			return a.backup.DeleteReplica(ctx, string(id)+".db")
		}
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := a.tenants.Purge(ctx, time.Now().Add(-retention), drop); err != nil {
			a.log.Error("purge deleted tenants", "err", err)
		} else if n > 0 {
			a.log.Info("purged deleted tenants", "tenants", n)
		}
		if err := a.tenants.RemoveTempFiles(); err != nil {
			a.log.Error("remove temporary files", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// validDomain reports whether d is a DNS name requests can carry in Host:
// dot-separated labels of 1-63 letters, digits and hyphens, no hyphen at
// either end of a label, 253 characters at most; a trailing dot is allowed.
func validDomain(d string) bool {
	d = strings.TrimSuffix(d, ".")
	if d == "" || len(d) > 253 {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
