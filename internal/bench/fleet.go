package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/silohq/silo/internal/catalog"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
	"github.com/silohq/silo/internal/tenantdb"
	"github.com/silohq/silo/internal/tenantdb/tenantsql"
)

// Tenant is a benchmark tenant: how to reach it and the rows it was seeded
// with, which reads ask for.
type Tenant struct {
	Slug     string   `json:"slug"`
	Token    string   `json:"token"`
	Projects []string `json:"projects"`
	Tasks    []string `json:"tasks"`
}

// Fleet is every benchmark tenant of a data dir, by placement. It is kept
// in the data dir (tokens are shown only once) so that a kept --data dir
// is reused by later runs.
type Fleet struct {
	Database []Tenant `json:"database"`
	Shared   []Tenant `json:"shared"`
	Schema   []Tenant `json:"schema,omitempty"`
	PGShared []Tenant `json:"pgshared,omitempty"`
}

const fleetFile = "bench-fleet.json"

// Seeded rows per tenant: enough that reads find a project, a task and a
// short list; few enough that 100,000 tenants provision in minutes.
const (
	seedProjects        = 2
	seedTasksPerProject = 1
)

func loadFleet(dir string) (*Fleet, error) {
	data, err := os.ReadFile(filepath.Join(dir, fleetFile))
	if errors.Is(err, os.ErrNotExist) {
		return &Fleet{}, nil
	} else if err != nil {
		return nil, err
	}
	var f Fleet
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", fleetFile, err)
	}
	return &f, nil
}

func (f *Fleet) save(dir string) error {
	data, err := json.Marshal(f)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, fleetFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, fleetFile))
}

func (f *Fleet) of(p silo.Strategy) *[]Tenant {
	switch p {
	case silo.StrategyShared:
		return &f.Shared
	case silo.StrategySchema:
		return &f.Schema
	case silo.StrategyPGShared:
		return &f.PGShared
	}
	return &f.Database
}

// provisioning is the result of growing a fleet.
type provisioning struct {
	Created int
	Elapsed time.Duration
}

// ensure makes sure dir holds at least n benchmark tenants of placement p,
// creating the missing ones on an app of its own (closed before it
// returns, so that the run starts with a cold cache and fresh counters).
func ensure(ctx context.Context, open Opener, dir string, f *Fleet, p silo.Strategy, n, conc int, progress io.Writer) (provisioning, error) {
	have := f.of(p)
	if len(*have) >= n {
		return provisioning{}, nil
	}
	start := time.Now()
	// A small cache: seeding touches each tenant once.
	app, err := open(ctx, dir, 256)
	if err != nil {
		return provisioning{}, err
	}
	created, perr := provision(ctx, app, p, len(*have), n, conc, progress)
	*have = append(*have, created...)
	cerr := app.Close(context.WithoutCancel(ctx))
	res := provisioning{Created: len(created), Elapsed: time.Since(start)}
	// Saved even when provisioning stopped (^C, an error): the tenants
	// made so far are kept for the next run, which goes on from there.
	serr := f.save(dir)
	return res, errors.Join(perr, cerr, serr)
}

// provision creates tenants from..to-1 of placement p the way a signup
// does (a file copied from the template, then the catalog row and token in
// one transaction) and seeds each with rows through the tenant-scoped
// services (its own file: straight into it, see seedFile). It calls the exported pieces
// directly instead of POST /api/tenants: the HTTP round trip and the JSON
// add nothing to what is measured later, and this is several times faster.
func provision(ctx context.Context, app *App, p silo.Strategy, from, to, conc int, progress io.Writer) ([]Tenant, error) {
	out := make([]Tenant, to-from)
	var projects silo.ProjectService = tenantdb.NewProjectService(app.Store)
	var tasks silo.TaskService = tenantdb.NewTaskService(app.Store)
	prefix := map[silo.Strategy]string{silo.StrategyDatabase: "d", silo.StrategyShared: "s", silo.StrategySchema: "c", silo.StrategyPGShared: "g"}[p]
	var next, done atomic.Int64
	next.Store(int64(from))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
	)
	stopProgress := progressLoop(progress, func(el time.Duration) string {
		d := done.Load()
		return fmt.Sprintf("provision: %d/%d %s tenants, %.0f/s", d, to-from, p, float64(d)/el.Seconds())
	})
	defer stopProgress()
	var wg sync.WaitGroup
	for range max(1, conc) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= to || ctx.Err() != nil {
					return
				}
				t, err := provisionOne(ctx, app, projects, tasks, p, fmt.Sprintf("%s%06d", prefix, i))
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("provision tenant %d: %w", i, err)
					}
					mu.Unlock()
					cancel()
					return
				}
				out[i-from] = t
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		// Stopped (^C) between tenants: the slots not reached are empty.
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		// Keep only the tenants that were completed, in order, so that a
		// saved fleet never names a tenant that does not exist.
		var ok []Tenant
		for _, t := range out {
			if t.Slug == "" {
				break
			}
			ok = append(ok, t)
		}
		return ok, firstErr
	}
	return out, nil
}

func provisionOne(ctx context.Context, app *App, projects silo.ProjectService, tasks silo.TaskService, p silo.Strategy, slug string) (Tenant, error) {
	t := &silo.Tenant{
		ID:            silo.TenantID(uuid.Must(uuid.NewV7()).String()),
		Slug:          slug,
		Name:          "Bench " + slug,
		Strategy:      p,
		Status:        silo.TenantActive,
		SchemaVersion: app.Store.Migrator().Latest(),
	}
	bt := Tenant{Slug: slug}
	if p == silo.StrategyDatabase {
		// As a signup: the file, complete, before the catalog row.
		if err := app.Store.Provision(ctx, t.ID); err != nil {
			return Tenant{}, err
		}
		if err := seedFile(ctx, app.Store, t.ID, &bt); err != nil {
			return Tenant{}, err
		}
	}
	if p.Postgres() && app.Schemas == nil {
		return Tenant{}, fmt.Errorf("the %s placement needs --postgres", p)
	}
	if p == silo.StrategySchema {
		if err := app.Schemas.CreateSchemaTenant(ctx, t.ID); err != nil {
			return Tenant{}, err
		}
	}
	secret, hash := catalog.NewToken()
	err := app.Catalog.CreateTenant(ctx, t, "bench", hash)
	for try := 0; silo.ErrorCode(err) == silo.ESLUGTAKEN && try < 3; try++ {
		// A run stopped mid-way made this slug after the last one it
		// recorded in the fleet file, and its token is lost: the same
		// tenant (file, rows) under another name.
		id := silo.NewID()
		t.Slug = slug + "-" + id[len(id)-8:]
		err = app.Catalog.CreateTenant(ctx, t, "bench", hash)
	}
	if err != nil {
		return Tenant{}, err
	}
	bt.Slug, bt.Token = t.Slug, secret
	if p == silo.StrategyDatabase {
		return bt, nil
	}
	// Shared files and PostgreSQL have no per-tenant open to save: seed
	// through the services, as the API would.
	if app.Projects != nil {
		projects, tasks = app.Projects, app.Tasks
	}
	tctx := silo.NewContextWithTenant(ctx, t)
	for j := range seedProjects {
		pr, err := projects.CreateProject(tctx, fmt.Sprintf("Project %d", j))
		if err != nil {
			return Tenant{}, err
		}
		bt.Projects = append(bt.Projects, pr.ID)
		for k := range seedTasksPerProject {
			tk, err := tasks.CreateTask(tctx, pr.ID, silo.NewTask{Title: fmt.Sprintf("Task %d", k)})
			if err != nil {
				return Tenant{}, err
			}
			bt.Tasks = append(bt.Tasks, tk.ID)
		}
	}
	return bt, nil
}

// seedFile writes a new tenant's seed rows straight into its file, before
// the tenant exists in the catalog: one open, one transaction, one close,
// and no fsync (synchronous=OFF on this private connection; the template
// copy itself was synced by Provision). Through the services the same rows
// cost an open by the cache, a transaction per row, and a checkpointing
// close with two fsyncs: several times longer. The rows are the ones the
// services would write (same sqlc queries, UUIDv7 ids, the tenant's id).
func seedFile(ctx context.Context, store *tenantdb.Store, id silo.TenantID, bt *Tenant) error {
	path, err := store.Path(id)
	if err != nil {
		return err
	}
	db, err := sqlite.Open(path, sqlite.Options{MaxConns: 1, MustExist: true})
	if err != nil {
		return err
	}
	defer db.Close()
	// With one connection, this reaches every statement below.
	if _, err := db.ExecContext(ctx, "PRAGMA synchronous=OFF"); err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	q := tenantsql.New(tx)
	now := time.Now().UnixMilli()
	for j := range seedProjects {
		pr, err := q.CreateProject(ctx, tenantsql.CreateProjectParams{
			ID: uuid.Must(uuid.NewV7()).String(), TenantID: string(id), Name: fmt.Sprintf("Project %d", j), CreatedAt: now, UpdatedAt: now,
		})
		if err != nil {
			return err
		}
		bt.Projects = append(bt.Projects, pr.ID)
		for k := range seedTasksPerProject {
			tk, err := q.CreateTask(ctx, tenantsql.CreateTaskParams{
				ID: uuid.Must(uuid.NewV7()).String(), TenantID: string(id), ProjectID: pr.ID, Title: fmt.Sprintf("Task %d", k), CreatedAt: now, UpdatedAt: now,
			})
			if err != nil {
				return err
			}
			bt.Tasks = append(bt.Tasks, tk.ID)
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	return db.Close()
}
