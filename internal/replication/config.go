package replication

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/benbjohnson/litestream"
	"gopkg.in/yaml.v3"
)

// DefaultConfigYAML is the litestream.yml Silo ships with. It backs up to
// data/replica/ so that `silo serve` has continuous backup with no setup, in
// the layout of Litestream's directory mode: a tenant file data/tenants/X.db
// replicates to data/replica/tenants/X.db, so the stock CLI restores one with
//
//	litestream restore -o OUT file://$PWD/data/replica/tenants/X.db
//
// run from the directory that holds data/. The URL needs "://" and an
// absolute path: the stock CLI reads file:data/... as a database path.
const DefaultConfigYAML = `# Continuous backup of Silo's SQLite files, in Litestream's own format
# (https://litestream.io/reference/config/), read by Silo's embedded Litestream.
#
# Paths: a relative path whose first element is "data" means Silo's data
# directory (--data), so data/tenants is <data dir>/tenants wherever that is.
# Any other relative path is relative to the working directory, as in Litestream.
# File replicas: "file:relative/dir" or "file:///absolute/dir".
#
# Each tenant file data/tenants/X.db is replicated to <replica url>/X.db, the
# layout of Litestream's directory mode, so the stock CLI can restore one:
#   litestream restore -o /tmp/X.db file:///ABSOLUTE/PATH/TO/data/replica/tenants/X.db
# (the stock CLI reads an argument as a replica URL only with "://", and a
# file URL's path must be absolute there; file:data/... is taken for a
# database path and looked up in /etc/litestream.yml).
#
# S3 or any S3-compatible store (MinIO, R2, B2, Tigris...): replace the urls,
# e.g.
#   url: s3://my-bucket/silo/catalog.db?region=eu-west-1
#   url: s3://my-bucket/silo/tenants?endpoint=https://s3.example.com&region=us-east-1
# Credentials come from the usual AWS variables (AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY, AWS_PROFILE...) or LITESTREAM_ACCESS_KEY_ID /
# LITESTREAM_SECRET_ACCESS_KEY. ${VAR} anywhere in this file is expanded.

# Snapshots (full copies) and how long history is kept. Point-in-time restore
# has ~1 s precision for l0-retention after a write, then the precision of the
# compaction levels (30s, 5m, 1h) back to the oldest snapshot kept.
snapshot:
  interval: 24h
  retention: 24h
l0-retention: 5m

dbs:
  - path: data/catalog.db
    replica:
      url: file:data/replica/catalog.db

  # Rows of the tenants placed "shared".
  - path: data/shared.db
    replica:
      url: file:data/replica/shared.db

  # Only open tenants are replicated: Silo registers a tenant when it opens
  # its file and unregisters it (after a final sync) when it closes it.
  - dir: data/tenants
    pattern: "*.db"
    # How often Litestream looks for new writes (monitor-interval) and the
    # least time between two uploads of a tenant (sync-interval): a write
    # waits up to one monitor-interval to be seen, then up to one
    # sync-interval for the upload, so the lag is at most about their sum.
    # A tenant still gets at most one change file a second; the shorter
    # sync-interval only stops the upload waiting out a tick that is not in
    # phase with the monitor's (p99 lag 2.0 s with 1s, 1.5 s with 500ms).
    monitor-interval: 1s
    # Litestream checkpoints a file whose WAL holds changes once a minute by
    # default; with a thousand tenants writing that is 17 checkpoints a
    # second, a tenth of the CPU in a profile under load. Ten
    # minutes (or 1,000 pages of WAL, whichever comes first) keeps the WAL
    # bounded at about 4 MB per tenant.
    checkpoint-interval: 10m
    replica:
      url: file:data/replica/tenants
      sync-interval: 500ms
`

// Config is a parsed litestream.yml. Every path in it is absolute.
type Config struct {
	// DataDir is the absolute data directory that "data/..." paths refer to.
	DataDir string

	// DBs holds the entries of the dbs: list, in file order.
	DBs []*DBConfig

	// Levels are the compaction levels: L0 followed by the levels: list, or
	// Litestream's defaults (30s, 5m, 1h).
	Levels litestream.CompactionLevels

	SnapshotInterval  time.Duration
	SnapshotRetention time.Duration
	// L0Retention is how long per-transaction (L0) files are kept after they
	// were compacted into L1: the window of ~1 s point-in-time precision.
	L0Retention time.Duration
	// ShutdownSyncTimeout bounds the final sync of UnregisterDB and Close.
	ShutdownSyncTimeout time.Duration
}

// DBConfig is one entry of the dbs: list: either one file (Path) or every file
// matching Pattern directly inside Dir.
type DBConfig struct {
	Path    string
	Dir     string
	Pattern string

	// ReplicaURL is the replica of Path, or the parent URL of the replicas of
	// the files in Dir (file X.db goes to ReplicaURL/X.db). File URLs are
	// normalised to file:///absolute/path.
	ReplicaURL string

	// Zero means Litestream's default.
	MonitorInterval    time.Duration
	CheckpointInterval time.Duration
	SyncInterval       time.Duration
	MinCheckpointPageN int
}

// Matches reports whether the database file at path (absolute) is covered by
// this entry.
func (c *DBConfig) Matches(path string) bool {
	if c.Path != "" {
		return c.Path == path
	}
	if filepath.Dir(path) != c.Dir {
		return false
	}
	ok, err := filepath.Match(c.Pattern, filepath.Base(path))
	return err == nil && ok
}

// replicaURLFor returns the replica URL of the file at path (absolute), which
// the entry must match.
func (c *DBConfig) replicaURLFor(path string) string {
	if c.Path != "" {
		return c.ReplicaURL
	}
	return joinURL(c.ReplicaURL, filepath.Base(path))
}

// Lookup returns the entry that covers the database file at path.
func (c *Config) Lookup(path string) (*DBConfig, string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, "", err
	}
	for _, dbc := range c.DBs {
		if dbc.Matches(abs) {
			return dbc, abs, nil
		}
	}
	return nil, abs, fmt.Errorf("replication: %s is not covered by any dbs: entry of litestream.yml", abs)
}

// TenantDir returns the first directory entry (the tenants directory), or nil.
func (c *Config) TenantDir() *DBConfig {
	for _, dbc := range c.DBs {
		if dbc.Dir != "" {
			return dbc
		}
	}
	return nil
}

// The YAML shape: a subset of Litestream's Config. Decoding is strict, so
// a Litestream setting Silo does not implement is an error rather than
// silently ignored.
type yamlConfig struct {
	DBs    []*yamlDB `yaml:"dbs"`
	Levels []struct {
		Interval time.Duration `yaml:"interval"`
	} `yaml:"levels"`
	Snapshot struct {
		Interval  *time.Duration `yaml:"interval"`
		Retention *time.Duration `yaml:"retention"`
	} `yaml:"snapshot"`
	L0Retention         *time.Duration `yaml:"l0-retention"`
	ShutdownSyncTimeout *time.Duration `yaml:"shutdown-sync-timeout"`
}

type yamlDB struct {
	Path    string `yaml:"path"`
	Dir     string `yaml:"dir"`
	Pattern string `yaml:"pattern"`
	// Watch is accepted for compatibility with the stock CLI and ignored:
	// Silo registers a tenant when it opens it, not when the file appears.
	Watch              bool           `yaml:"watch"`
	MonitorInterval    *time.Duration `yaml:"monitor-interval"`
	CheckpointInterval *time.Duration `yaml:"checkpoint-interval"`
	MinCheckpointPageN *int           `yaml:"min-checkpoint-page-count"`
	Replica            *struct {
		URL          string         `yaml:"url"`
		Path         string         `yaml:"path"`
		Type         string         `yaml:"type"`
		SyncInterval *time.Duration `yaml:"sync-interval"`
	} `yaml:"replica"`
}

// ReadConfigFile parses the litestream.yml at path; see ParseConfig.
func ReadConfigFile(path, dataDir string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cfg, err := ParseConfig(f, dataDir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses a litestream.yml in Litestream's format.
//
// As in Litestream, $VAR and ${VAR} are expanded from the environment before
// parsing ($PID is the process id). Paths are resolved with one rule: a
// relative path whose first element is "data" is resolved against dataDir, so
// the file keeps working when Silo runs with --data elsewhere; any other
// relative path is relative to the working directory, as in Litestream. With
// dataDir "data" in the working directory both rules agree with the stock CLI.
func ParseConfig(r io.Reader, dataDir string) (*Config, error) {
	buf, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	buf = []byte(os.Expand(string(buf), func(key string) string {
		if key == "PID" {
			return strconv.Itoa(os.Getpid())
		}
		return os.Getenv(key)
	}))

	var raw yamlConfig
	dec := yaml.NewDecoder(bytes.NewReader(buf))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse litestream config: %w", err)
	}

	if dataDir, err = filepath.Abs(dataDir); err != nil {
		return nil, err
	}
	cfg := &Config{
		DataDir:             dataDir,
		Levels:              litestream.CompactionLevels{{Level: 0}},
		SnapshotInterval:    litestream.DefaultSnapshotInterval,
		SnapshotRetention:   litestream.DefaultSnapshotRetention,
		L0Retention:         litestream.DefaultL0Retention,
		ShutdownSyncTimeout: litestream.DefaultShutdownSyncTimeout,
	}
	if len(raw.Levels) == 0 {
		for _, l := range litestream.DefaultCompactionLevels[1:] {
			cfg.Levels = append(cfg.Levels, &litestream.CompactionLevel{Level: l.Level, Interval: l.Interval})
		}
	}
	for i, l := range raw.Levels {
		cfg.Levels = append(cfg.Levels, &litestream.CompactionLevel{Level: i + 1, Interval: l.Interval})
	}
	if err := cfg.Levels.Validate(); err != nil {
		return nil, err
	}
	setDuration(&cfg.SnapshotInterval, raw.Snapshot.Interval)
	setDuration(&cfg.SnapshotRetention, raw.Snapshot.Retention)
	setDuration(&cfg.L0Retention, raw.L0Retention)
	setDuration(&cfg.ShutdownSyncTimeout, raw.ShutdownSyncTimeout)

	for i, y := range raw.DBs {
		dbc, err := parseDB(y, dataDir)
		if err != nil {
			return nil, fmt.Errorf("dbs[%d]: %w", i, err)
		}
		cfg.DBs = append(cfg.DBs, dbc)
	}
	return cfg, nil
}

func parseDB(y *yamlDB, dataDir string) (*DBConfig, error) {
	dbc := &DBConfig{Pattern: y.Pattern}
	var err error
	switch {
	case y.Path != "" && y.Dir != "":
		return nil, fmt.Errorf("set either path or dir, not both")
	case y.Path != "":
		if dbc.Path, err = resolvePath(litestreamStripSQLite(y.Path), dataDir); err != nil {
			return nil, err
		}
	case y.Dir != "":
		if y.Pattern == "" {
			return nil, fmt.Errorf("dir %q needs a pattern", y.Dir)
		}
		if _, err := filepath.Match(y.Pattern, ""); err != nil {
			return nil, fmt.Errorf("pattern %q: %w", y.Pattern, err)
		}
		if dbc.Dir, err = resolvePath(y.Dir, dataDir); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("path or dir required")
	}

	if y.Replica == nil {
		return nil, fmt.Errorf("replica required")
	}
	switch {
	case y.Replica.URL != "" && y.Replica.Path != "":
		return nil, fmt.Errorf("replica: set either url or path, not both")
	case y.Replica.URL != "":
		if dbc.ReplicaURL, err = normalizeReplicaURL(y.Replica.URL, dataDir); err != nil {
			return nil, err
		}
	case y.Replica.Path != "" && (y.Replica.Type == "" || y.Replica.Type == "file"):
		// Litestream's older form: a file replica given by path.
		p, err := resolvePath(y.Replica.Path, dataDir)
		if err != nil {
			return nil, err
		}
		dbc.ReplicaURL = fileURL(p)
	default:
		return nil, fmt.Errorf("replica: url required")
	}

	if y.MonitorInterval != nil {
		dbc.MonitorInterval = *y.MonitorInterval
	}
	if y.CheckpointInterval != nil {
		dbc.CheckpointInterval = *y.CheckpointInterval
	}
	if y.MinCheckpointPageN != nil {
		dbc.MinCheckpointPageN = *y.MinCheckpointPageN
	}
	if y.Replica.SyncInterval != nil {
		dbc.SyncInterval = *y.Replica.SyncInterval
	}
	return dbc, nil
}

// resolvePath applies the path rule documented on ParseConfig.
func resolvePath(p, dataDir string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("empty path")
	}
	if filepath.IsAbs(p) {
		return filepath.Clean(p), nil
	}
	clean := filepath.Clean(p)
	if first, rest, _ := strings.Cut(filepath.ToSlash(clean), "/"); first == "data" {
		return filepath.Join(dataDir, filepath.FromSlash(rest)), nil
	}
	return filepath.Abs(clean)
}

// normalizeReplicaURL resolves file URLs to file:///absolute/path and checks
// that other URLs name a backend Silo links in.
func normalizeReplicaURL(raw, dataDir string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("replica url: %w", err)
	}
	switch u.Scheme {
	case "file":
		// Litestream reads file://data/x as the absolute /data/x (the "host" is
		// glued back onto the path), which is rarely what was meant; refuse it
		// rather than write somewhere unexpected.
		if u.Host != "" && u.Host != "localhost" {
			return "", fmt.Errorf("replica url %q: use file:relative/dir or file:///absolute/dir", raw)
		}
		p := u.Opaque
		if p == "" {
			p = u.Path
		}
		if p, err = resolvePath(p, dataDir); err != nil {
			return "", err
		}
		return fileURL(p), nil
	case "s3":
		if u.Host == "" {
			return "", fmt.Errorf("replica url %q: bucket required", raw)
		}
		return raw, nil
	default:
		return "", fmt.Errorf("replica url %q: Silo supports file: and s3: replicas", raw)
	}
}

func fileURL(absPath string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(absPath)}).String()
}

// joinURL appends one path element to a replica URL, keeping its query.
func joinURL(base, elem string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base + "/" + elem
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + elem
	u.RawPath = ""
	return u.String()
}

// litestreamStripSQLite drops a sqlite:// or sqlite3:// prefix, which
// Litestream accepts on db paths.
func litestreamStripSQLite(s string) string {
	for _, p := range []string{"sqlite3://", "sqlite://"} {
		if strings.HasPrefix(s, p) {
			return strings.TrimPrefix(s, p)
		}
	}
	return s
}

func setDuration(dst *time.Duration, v *time.Duration) {
	if v != nil {
		*dst = *v
	}
}
