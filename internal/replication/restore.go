package replication

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/benbjohnson/litestream"
	"github.com/silohq/silo/internal/silo"
	"github.com/superfly/ltx"
)

// RestoreTempInfix is in the name of a restore's download, beside its
// output (<out>.restore-<id>, and Litestream's <out>.restore-<id>.tmp),
// until it is linked to its output: what a crash leaves under such a name
// is garbage.
const RestoreTempInfix = ".restore-"

// linkFile is os.Link; tests make it fail as on a file system without
// hard links.
var linkFile = os.Link

// syncDir fsyncs a directory, so that the names made or removed in it last.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// replicaClient returns the client of the replica of name, which is either a
// tenant's file name ("t1.db", in the tenants dir: entry) or the path of any
// configured database ("data/catalog.db", resolved like the config's paths).
func (r *Replicator) replicaClient(ctx context.Context, name string) (litestream.ReplicaClient, string, error) {
	var path string
	if !strings.ContainsRune(name, '/') && !strings.ContainsRune(name, filepath.Separator) {
		dir := r.cfg.TenantDir()
		if dir == nil {
			return nil, "", fmt.Errorf("replication: no dir: entry for tenant file %q", name)
		}
		path = filepath.Join(dir.Dir, name)
	} else {
		var err error
		if path, err = resolvePath(name, r.cfg.DataDir); err != nil {
			return nil, "", err
		}
	}
	dbc, abs, err := r.cfg.Lookup(path)
	if err != nil {
		return nil, "", err
	}
	client, err := r.clients.forURL(ctx, dbc.replicaURLFor(abs))
	if err != nil {
		return nil, "", err
	}
	return client, abs, nil
}

// Restore writes the database name (see replicaClient) as of a point in time
// to the new file out, which must not exist. With a zero at and txid it
// restores the latest replicated state; otherwise the state after the last
// transaction committed at or before at, or after transaction txid (not
// both). The file is checked with PRAGMA quick_check. It works whether or
// not name is registered; to restore in place, unregister and close it,
// restore to a temporary file, RemoveLocalState, and rename over it.
//
// Precision: every transaction is its own L0 file for l0-retention (5 min)
// after it was compacted into L1, so within that window a restore is exact
// to the second. Older points resolve to the compaction levels (30 s, 5 min,
// 1 h files) and fail with "transaction not available" when no file ends at
// or before the target.
//
// Restores to one out path exclude each other: the first to finish creates
// out, the others fail with a conflict and leave it alone. A -wal, -shm or
// -journal already beside out is refused: SQLite would take it for the
// restored file's own and apply it.
func (r *Replicator) Restore(ctx context.Context, name, out string, at time.Time, txid uint64) error {
	client, abs, err := r.replicaClient(ctx, name)
	if err != nil {
		return err
	}
	// No cold compaction of this file while the restore reads its files:
	// L0 retention could delete one the restore planned to read.
	e := r.lock(abs)
	defer e.mu.Unlock()
	for _, p := range []string{out, out + "-wal", out + "-shm", out + "-journal"} {
		if _, err := os.Lstat(p); err == nil {
			if p == out {
				return silo.Errorf(silo.ECONFLICT, "%s already exists; restore to a new file.", out)
			}
			return silo.Errorf(silo.ECONFLICT, "%s is left from an earlier database at %s, and SQLite would apply it to the restored copy: remove it, or restore to another path.", p, out)
		}
	}
	// Litestream writes <output>.tmp, then renames it to <output>: two
	// restores to one path would write one temporary file, and the rename
	// would replace what another had made. Each restores to a name of its
	// own, then links it to out, which fails if out exists by then.
	if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
		return fmt.Errorf("replication: restore %s: %w", name, err)
	}
	tmp := out + RestoreTempInfix + silo.NewID()
	defer os.Remove(tmp)
	opt := litestream.NewRestoreOptions()
	opt.OutputPath = tmp
	opt.Timestamp = at
	opt.TXID = ltx.TXID(txid)
	opt.IntegrityCheck = litestream.IntegrityCheckQuick
	rep := litestream.NewReplicaWithClient(nil, client)
	if err := rep.Restore(ctx, opt); err != nil {
		if errors.Is(err, litestream.ErrTxNotAvailable) || errors.Is(err, litestream.ErrNoSnapshots) {
			// No file of the replica covers the point asked for; for
			// "the latest", the replica has no file at all.
			if at.IsZero() && txid == 0 {
				return silo.Errorf(silo.ENOTFOUND, "There is no backup of %s to restore.", name)
			}
			return silo.Errorf(silo.EINVALID, "The backup of %s holds no state at that point (transaction or time); `silo backup status` shows its newest transaction.", name)
		}
		return fmt.Errorf("replication: restore %s: %w", name, err)
	}
	// Litestream creates the file with the process's umask (0644 as a
	// rule); tenant data is readable by its owner only, as Silo's own
	// files are, wherever --to puts the copy.
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fmt.Errorf("replication: restore %s: %w", name, err)
	}
	conflict := silo.Errorf(silo.ECONFLICT, "%s was created while the backup was restored (another restore to the same path?); it was left alone.", out)
	if err := linkFile(tmp, out); errors.Is(err, fs.ErrExist) {
		return conflict
	} else if err != nil {
		// A file system without hard links (vfat, some network and FUSE
		// mounts): rename, after a last look, since it would replace a
		// file made meanwhile.
		if _, err := os.Lstat(out); err == nil {
			return conflict
		}
		if err := os.Rename(tmp, out); err != nil {
			return fmt.Errorf("replication: restore %s: %w", name, err)
		}
	}
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("replication: restore %s: %w", name, err)
	}
	// The new name, and the temporary one gone, survive a power loss.
	if err := syncDir(filepath.Dir(out)); err != nil {
		return fmt.Errorf("replication: restore %s: %w", name, err)
	}
	return nil
}

// Status is the replication state of one database.
type Status struct {
	// TXID is the newest transaction in the replica and UpdatedAt the time
	// its file was written; zero if the replica is empty.
	TXID      uint64
	UpdatedAt time.Time
	// Registered reports whether the file is being replicated now, and
	// LocalTXID the newest transaction Litestream has read from its WAL
	// (TXID < LocalTXID means an upload is pending).
	Registered bool
	LocalTXID  uint64
}

// Status reports the replication state of name (see replicaClient). It lists
// the replica, so it costs a few LIST requests on S3.
func (r *Replicator) Status(ctx context.Context, name string) (Status, error) {
	client, abs, err := r.replicaClient(ctx, name)
	if err != nil {
		return Status{}, err
	}
	var st Status
	levels := []int{litestream.SnapshotLevel}
	for _, l := range r.cfg.Levels {
		levels = append(levels, l.Level)
	}
	for _, level := range levels {
		itr, err := client.LTXFiles(ctx, level, 0, false)
		if err != nil {
			return st, err
		}
		for itr.Next() {
			info := itr.Item()
			if uint64(info.MaxTXID) > st.TXID || (uint64(info.MaxTXID) == st.TXID && info.CreatedAt.After(st.UpdatedAt)) {
				st.TXID, st.UpdatedAt = uint64(info.MaxTXID), info.CreatedAt
			}
		}
		if err := itr.Close(); err != nil {
			return st, err
		}
	}

	r.mu.Lock()
	e := r.dbs[abs]
	r.mu.Unlock()
	if e != nil {
		e.mu.Lock()
		if e.ldb != nil {
			st.Registered = true
			if pos, err := e.ldb.Pos(); err == nil {
				st.LocalTXID = uint64(pos.TXID)
			}
		}
		e.mu.Unlock()
	}
	return st, nil
}

// ReplicaTXID is the newest transaction in the replica of name (see
// replicaClient): 0 if nothing was ever replicated.
func (r *Replicator) ReplicaTXID(ctx context.Context, name string) (uint64, error) {
	st, err := r.Status(ctx, name)
	return st.TXID, err
}

// DeleteReplica deletes every backup of name (see replicaClient). It refuses
// while the file is registered. Deleting a tenant also needs its file, -wal,
// -shm and RemoveLocalState.
func (r *Replicator) DeleteReplica(ctx context.Context, name string) error {
	client, abs, err := r.replicaClient(ctx, name)
	if err != nil {
		return err
	}
	// Under the file's lock, so that no cold compaction writes an L1 file
	// into the replica after it is gone.
	e := r.lock(abs)
	defer e.mu.Unlock()
	if e.ldb != nil {
		return fmt.Errorf("replication: %s is registered; unregister it first", abs)
	}
	if err := client.DeleteAll(ctx); err != nil {
		return fmt.Errorf("replication: delete replica of %s: %w", name, err)
	}
	e.coldL0, e.done = false, nil
	return nil
}
