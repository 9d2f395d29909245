// Package pg is Silo's PostgreSQL engine: the `schema` placement (one
// PostgreSQL schema per tenant, reached with a transaction-local
// search_path) and the `pgshared` placement (shared tables guarded by
// Row-Level Security on tenant_id, keyed by a transaction-local
// app.tenant_id). Its ProjectService and TaskService have the method sets
// of internal/server's interfaces, so the HTTP layer cannot tell the
// engines apart.
//
// # Roles
//
// The app connects as a plain role: not a superuser, without BYPASSRLS, and
// not the owner of the shared tables (Open refuses any other, because RLS
// would not bind it). An administrator creates that role once and runs
// Setup, which creates the shared schema, tables and policies as the admin
// and grants the app role only what it needs:
//
//	CREATE ROLE silo_app LOGIN PASSWORD '…';   -- NOSUPERUSER NOBYPASSRLS by default
//	-- then, as an owner of the database (e.g. `silo`):
//	pg.Setup(ctx, "postgres://silo:…@host/silo", "silo_app", pg.Config{})
//
// which amounts to:
//
//	CREATE SCHEMA silo_shared;                        -- owned by the admin
//	-- schema/postgres/shared/*.sql in it: tables, ENABLE + FORCE ROW LEVEL SECURITY,
//	-- policies USING / WITH CHECK (tenant_id = current_setting('app.tenant_id', true))
//	GRANT USAGE ON SCHEMA silo_shared TO silo_app;
//	GRANT SELECT, INSERT, UPDATE, DELETE ON silo_shared.projects, silo_shared.tasks TO silo_app;
//	GRANT CREATE ON DATABASE silo TO silo_app;        -- to create tenants' schemas
//
// Tenants' own schemas are created and migrated by the app role at signup
// (CreateSchemaTenant), so the app owns them: for `schema` the wall is the
// search_path of each transaction plus the tenant_id filter in every query.
//
// # Requests
//
// Every call runs in one transaction that first sets, with set_config(...,
// true) (exactly SET LOCAL), both search_path (the tenant's schema, or the
// shared one) and app.tenant_id. Both revert when the transaction ends,
// committed or not, so a pooled connection, or a PgBouncer in transaction
// mode, never carries one tenant's path or id into another's request.
//
// pgx caches prepared statements per connection, across tenants.
// PostgreSQL re-parses a prepared statement when search_path has changed
// since its last use, so each tenant's statement reads its own tables; if
// two schemas were at versions with different columns, the statement fails
// ("cached plan must not change result type") rather than misreading rows.
package pg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/schema"
)

// The PostgreSQL placements.
const (
	StrategySchema   = silo.StrategySchema   // one PostgreSQL schema per tenant
	StrategyPGShared = silo.StrategyPGShared // shared tables under Row-Level Security
)

// DefaultSharedSchema is where the `pgshared` tables live unless
// Config.SharedSchema says otherwise.
const DefaultSharedSchema = "silo_shared"

// tenantSetting is the setting the shared tables' policies compare
// tenant_id with.
const tenantSetting = "app.tenant_id"

// Config holds the engine's settings.
type Config struct {
	SharedSchema string // schema of the pgshared tables; "" is DefaultSharedSchema
	MaxConns     int32  // pool size; 0 keeps pgxpool's default (or the URL's pool_max_conns)
	// RequestTimeout bounds each request's work in PostgreSQL; 0 is
	// requestTimeout (30 s).
	RequestTimeout time.Duration
}

func (c Config) sharedSchema() string {
	if c.SharedSchema == "" {
		return DefaultSharedSchema
	}
	return c.SharedSchema
}

// Engine is a pool of connections to one PostgreSQL database, serving
// tenants of both PostgreSQL placements.
type Engine struct {
	pool       *pgxpool.Pool
	shared     string     // quoted shared schema
	sharedName string     // its plain name
	tenant     migrations // schema/postgres/tenant
	// current holds the schema tenants whose schema was found at Latest
	// although the catalog said otherwise (it lags `silo migrate`), so
	// that their requests stop asking.
	current sync.Map // silo.TenantID → struct{}

	// notReady is set while an engine opened by OpenLazy has not yet
	// checked its role and setup (PostgreSQL was unreachable at start):
	// nothing reaches tenant data meanwhile (db).
	notReady atomic.Bool
	stop     chan struct{} // closed by Close; nil for Open
	done     chan struct{} // closed when the readiness loop ends

	timeout time.Duration // Config.RequestTimeout
}

// db is the pool, for every use that reaches tenant data.
func (e *Engine) db() (*pgxpool.Pool, error) {
	if e.notReady.Load() {
		return nil, silo.Errorf(silo.EUNAVAILABLE, "PostgreSQL, where this tenant lives, cannot be reached now; retry shortly.")
	}
	return e.pool, nil
}

// Open connects to url as the app role and checks that Row-Level Security
// binds that role: a superuser, a BYPASSRLS role or the owner of the shared
// tables is refused.
func Open(ctx context.Context, url string, cfg Config) (*Engine, error) {
	e, err := newEngine(ctx, url, cfg)
	if err != nil {
		return nil, err
	}
	if err := e.check(ctx); err != nil {
		e.pool.Close()
		return nil, err
	}
	return e, nil
}

// OpenLazy is Open for a server that must start while PostgreSQL is
// unreachable: its tenants in SQLite are served meanwhile. If PostgreSQL
// cannot be reached, the engine answers 503 for its tenants and checks
// again every retry, running setup first (the --postgres-admin work, or
// nil), until the role and setup checks pass. Anything else that Open
// refuses (a wrong password, a superuser role, a database not set up) is
// an error here too, as is everything at once when PostgreSQL answers.
func OpenLazy(ctx context.Context, url string, cfg Config, setup func(context.Context) error, retry time.Duration, log *slog.Logger) (*Engine, error) {
	e, err := newEngine(ctx, url, cfg)
	if err != nil {
		return nil, err
	}
	ready := func(ctx context.Context) error {
		if setup != nil {
			if err := setup(ctx); err != nil {
				return err
			}
		}
		return e.check(ctx)
	}
	err = ready(ctx)
	if err == nil {
		return e, nil
	}
	if !down(err) {
		e.pool.Close()
		return nil, err
	}
	log.Warn("postgres: unreachable; serving the other placements, and answering 503 for its tenants until it is back", "err", err)
	e.notReady.Store(true)
	e.stop, e.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(e.done)
		t := time.NewTicker(retry)
		defer t.Stop()
		for {
			select {
			case <-e.stop:
				return
			case <-t.C:
			}
			cctx, cancel := context.WithTimeout(context.Background(), retry+10*time.Second)
			err := ready(cctx)
			cancel()
			switch {
			case err == nil:
				e.notReady.Store(false)
				log.Info("postgres: reachable and set up; serving its tenants")
				return
			case !down(err):
				// Reached, and refused: the settings are wrong. Say so at
				// every retry; the operator may fix PostgreSQL's side.
				log.Error("postgres: reachable but not usable; its tenants answer 503", "err", err)
			}
		}
	}()
	return e, nil
}

func newEngine(ctx context.Context, url string, cfg Config) (*Engine, error) {
	ms, err := parseMigrations(schema.PostgresTenant())
	if err != nil {
		return nil, err
	}
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if cfg.MaxConns > 0 {
		pcfg.MaxConns = cfg.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return &Engine{
		pool:       pool,
		shared:     pgx.Identifier{cfg.sharedSchema()}.Sanitize(),
		sharedName: cfg.sharedSchema(),
		tenant:     ms,
		timeout:    cfg.RequestTimeout,
	}, nil
}

// requestTimeout bounds one request's work in PostgreSQL (a signup's
// schema, a tenant's query, a size): a server that stops answering (a dead
// network path, a stopped process) is otherwise waited on without end,
// since nothing else puts a deadline on the connection, and the request
// answers nothing and holds a shutdown up. It is well within serve's
// one-minute write deadline; what outlasts it answers 503 (timed out).
const requestTimeout = 30 * time.Second

// bound gives ctx the engine's request deadline.
func (e *Engine) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	d := e.timeout
	if d <= 0 {
		d = requestTimeout
	}
	return context.WithTimeout(ctx, d)
}

// check runs Open's checks: the role, then the setup.
func (e *Engine) check(ctx context.Context) error {
	if err := e.checkRole(ctx); err != nil {
		return err
	}
	return e.checkReady(ctx)
}

// Ready reports whether the engine serves its tenants (false while an
// OpenLazy engine waits for PostgreSQL).
func (e *Engine) Ready() bool { return !e.notReady.Load() }

// checkReady refuses to start on a database that Setup (--postgres-admin)
// has not prepared for this role: without it the server started, then
// answered 500 to every signup and request of both placements.
func (e *Engine) checkReady(ctx context.Context) error {
	var role string
	var tables, createSchemas bool
	err := e.pool.QueryRow(ctx, `
		SELECT current_user,
		       to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL
		         AND has_table_privilege($1, 'SELECT, INSERT, UPDATE, DELETE')
		         AND has_table_privilege($2, 'SELECT, INSERT, UPDATE, DELETE'),
		       has_database_privilege(current_database(), 'CREATE')`,
		e.shared+".projects", e.shared+".tasks").Scan(&role, &tables, &createSchemas)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if !tables || !createSchemas {
		return fmt.Errorf("postgres: this database is not set up for role %q (the pgshared tables in schema %q, and the right to create tenant schemas): start once with --postgres-admin OWNER_URL, which creates them and grants the role", role, e.sharedName)
	}
	return nil
}

// checkRole refuses a role that Row-Level Security would not bind.
func (e *Engine) checkRole(ctx context.Context) error {
	var role string
	var bypass, owns bool
	err := e.pool.QueryRow(ctx, `
		SELECT current_user, r.rolsuper OR r.rolbypassrls,
		       EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		               WHERE n.nspname = $1 AND c.relowner = r.oid)
		FROM pg_roles r WHERE r.rolname = current_user`, e.sharedName).Scan(&role, &bypass, &owns)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if bypass {
		return fmt.Errorf("postgres: role %q is a superuser or has BYPASSRLS, so row-level security would not bind it; give --postgres a plain role and --postgres-admin an owner role that sets the tables up", role)
	}
	if owns {
		return fmt.Errorf("postgres: role %q owns tables in schema %q; the app must not own the tables its policies guard: give --postgres a plain role and --postgres-admin the owner", role, e.sharedName)
	}
	return nil
}

// Close closes the pool, waiting for borrowed connections.
func (e *Engine) Close() {
	if e.stop != nil {
		close(e.stop)
		<-e.done
	}
	e.pool.Close()
}

// Latest is the schema version this build's tenant migrations reach.
func (e *Engine) Latest() int64 { return e.tenant.latest() }

// idRE is what a tenant id must look like before it names a schema: a
// second check behind the rule that ids are only generated by Silo. The
// bound keeps "tenant_" + id within PostgreSQL's 63-byte identifiers, which
// it would otherwise truncate silently.
var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,55}$`)

// SchemaName returns the (unquoted) schema of tenant id: derived from the
// immutable id alone, never from the slug, so renames cannot move it.
func SchemaName(id silo.TenantID) (string, error) {
	if !idRE.MatchString(string(id)) {
		return "", silo.Errorf(silo.ETENANTNOTFOUND, "No such tenant.")
	}
	return "tenant_" + string(id), nil
}

// Reachable fails with EUNAVAILABLE while the engine cannot serve its
// tenants: not ready yet (OpenLazy), or PostgreSQL not answering a ping.
func (e *Engine) Reachable(ctx context.Context) error {
	ctx, cancel := e.bound(ctx)
	defer cancel()
	pool, err := e.db()
	if err != nil {
		return err
	}
	if err := pool.Ping(ctx); err != nil {
		if ctx.Err() != nil || unreachable(err) {
			return silo.Errorf(silo.EUNAVAILABLE, "PostgreSQL cannot be reached now; retry shortly.")
		}
		return formatError(err)
	}
	return nil
}

// CreateSchemaTenant creates tenant id's schema and migrates it to the
// latest version, in one transaction: a failure leaves no schema behind.
// It is idempotent, so a retried signup finishes what a failed one began.
func (e *Engine) CreateSchemaTenant(ctx context.Context, id silo.TenantID) error {
	ctx, cancel := e.bound(ctx)
	defer cancel()
	_, _, err := e.migrateSchema(ctx, id, e.Latest(), true)
	return formatError(err)
}

// ErrSchemaMissing is MigrateSchemaTenant's answer for a tenant without a
// schema: moved out of it (or deleted) since the caller read the catalog.
var ErrSchemaMissing = errors.New("the tenant has no schema (moved or deleted meanwhile)")

// MigrateSchemaTenant moves tenant id's existing schema to version target
// (up or down) in one transaction. It never creates one: `silo migrate`
// beside a server would otherwise give a tenant that just moved out of
// its schema a new, empty one (ErrSchemaMissing instead).
func (e *Engine) MigrateSchemaTenant(ctx context.Context, id silo.TenantID, target int64) (from, to int64, err error) {
	return e.migrateSchema(ctx, id, target, false)
}

func (e *Engine) migrateSchema(ctx context.Context, id silo.TenantID, target int64, create bool) (from, to int64, err error) {
	name, err := SchemaName(id)
	if err != nil {
		return 0, 0, err
	}
	e.current.Delete(id) // the gate asks the schema again
	pool, err := e.db()
	if err != nil {
		return 0, 0, err
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		from, to, err = e.tenant.migrate(ctx, tx, name, target, create)
		return err
	})
	if err != nil {
		return from, from, err
	}
	return from, to, nil
}

// SchemaVersion returns the version of tenant id's schema; 0 if it has none.
func (e *Engine) SchemaVersion(ctx context.Context, id silo.TenantID) (int64, error) {
	name, err := SchemaName(id)
	if err != nil {
		return 0, err
	}
	pool, err := e.db()
	if err != nil {
		return 0, err
	}
	return version(ctx, pool, name)
}

// DropTenant deletes every row of tenant id in placement p: its whole
// schema for `schema`, its rows in the shared tables for `pgshared`. It is
// idempotent.
func (e *Engine) DropTenant(ctx context.Context, id silo.TenantID, p silo.Strategy) error {
	switch p {
	case StrategySchema:
		name, err := SchemaName(id)
		if err != nil {
			return err
		}
		pool, err := e.db()
		if err != nil {
			return err
		}
		_, err = pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE")
		return formatError(err)
	case StrategyPGShared:
		// Under RLS the app can delete only the tenant it is set to.
		t := &silo.Tenant{ID: id, Strategy: p}
		return e.withScope(silo.NewContextWithTenant(ctx, t), func(sc *scope) error {
			if err := sc.q.DeleteTenantTasks(ctx, sc.tenantID); err != nil {
				return err
			}
			return sc.q.DeleteTenantProjects(ctx, sc.tenantID)
		})
	}
	return fmt.Errorf("postgres: %q is not a PostgreSQL placement", p)
}

// formatError translates PostgreSQL errors that have a meaning for the API;
// others pass through, to be answered as internal errors.
func formatError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return silo.Errorf(silo.ENOTFOUND, "Not found.")
	case isUnique(err):
		return silo.Errorf(silo.ECONFLICT, "Already exists.")
	case unreachable(err):
		return silo.Errorf(silo.EUNAVAILABLE, "PostgreSQL, where this tenant lives, cannot be reached now; retry shortly.")
	case retryCode(pgCode(err)):
		// PostgreSQL's own bounds, set by its operator (lock_timeout,
		// statement_timeout), or a conflict it resolved by aborting this
		// transaction: nothing was changed, a retry may pass.
		return fmt.Errorf("%w (%w)", silo.Errorf(silo.EUNAVAILABLE, "PostgreSQL could not run this now (a lock, a timeout or a conflict); retry shortly."), err)
	}
	return err
}

// retryCode reports whether a SQLSTATE is a transaction PostgreSQL aborted
// for now rather than for good: lock_not_available, query_canceled (its
// statement_timeout), serialization_failure, deadlock_detected.
func retryCode(code string) bool {
	switch code {
	case "55P03", "57014", "40001", "40P01":
		return true
	}
	return false
}

// down reports whether err says PostgreSQL is not there to answer, as
// opposed to answering no: a server that refuses the password, the role or
// the database is reached. (unreachable, for requests, counts any failed
// connection as a reason to retry.)
func down(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return goneCode(pe.Code)
	}
	return unreachable(err)
}

// unreachable reports whether err means PostgreSQL could not be reached or
// went away (down, restarting, network): the client may retry, so 503 and
// not 500.
func unreachable(err error) bool {
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	return goneCode(pgCode(err)) || pgconn.SafeToRetry(err)
}

// goneCode reports whether a SQLSTATE says the server went away or is not
// serving yet.
func goneCode(code string) bool {
	return strings.HasPrefix(code, "08") || // connection exception
		code == "57P01" || code == "57P02" || code == "57P03" // shutting down, crashed, starting
}

// PostgreSQL error codes (SQLSTATE) the engine gives a meaning.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
	codeUndefinedTable      = "42P01"
)

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func isUnique(err error) bool { return pgCode(err) == codeUniqueViolation }
