package pg

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/silohq/silo/schema"
)

// Setup prepares a database for the app role appRole, connecting as an
// administrator (adminURL: the database's owner or a superuser). It creates
// the shared schema owned by the admin, migrates the shared tables with
// their Row-Level Security (schema/postgres/shared), grants appRole DML on
// them and nothing else there, and lets appRole create tenants' schemas.
// appRole must already exist; Setup refuses one that RLS would not bind.
// It is idempotent and safe to run at every deploy, from several processes.
func Setup(ctx context.Context, adminURL, appRole string, cfg Config) error {
	ms, err := parseMigrations(schema.PostgresShared())
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("postgres setup: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var bypass bool
	err = conn.QueryRow(ctx, "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = $1", appRole).Scan(&bypass)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres setup: role %q does not exist; create it first (CREATE ROLE %s LOGIN PASSWORD '…')", appRole, appRole)
	} else if err != nil {
		return fmt.Errorf("postgres setup: %w", err)
	}
	if bypass {
		return fmt.Errorf("postgres setup: role %q is a superuser or has BYPASSRLS; the app role must be a plain role", appRole)
	}

	shared := cfg.sharedSchema()
	role := pgx.Identifier{appRole}.Sanitize()
	q := pgx.Identifier{shared}.Sanitize()
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, _, err := ms.migrate(ctx, tx, shared, ms.latest(), true); err != nil {
			return err
		}
		var db string
		if err := tx.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
			return err
		}
		for _, stmt := range []string{
			"GRANT USAGE ON SCHEMA " + q + " TO " + role,
			"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA " + q + " TO " + role,
			// The version table is the migrator's, not the app's.
			"REVOKE ALL ON " + pgx.Identifier{shared, versionTable}.Sanitize() + " FROM " + role,
			"GRANT CREATE ON DATABASE " + pgx.Identifier{db}.Sanitize() + " TO " + role,
		} {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("postgres setup: %s: %w", stmt, err)
			}
		}
		return nil
	})
}
