package replication

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfigDefault(t *testing.T) {
	dataDir := t.TempDir()
	cfg, err := ParseConfig(strings.NewReader(DefaultConfigYAML), dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.DBs) != 3 {
		t.Fatalf("%d dbs", len(cfg.DBs))
	}
	cat, shared, ten := cfg.DBs[0], cfg.DBs[1], cfg.DBs[2]
	if shared.Path != filepath.Join(dataDir, "shared.db") || shared.ReplicaURL != "file://"+filepath.Join(dataDir, "replica", "shared.db") {
		t.Fatalf("shared entry %+v", shared)
	}
	if cat.Path != filepath.Join(dataDir, "catalog.db") || cat.ReplicaURL != "file://"+filepath.Join(dataDir, "replica", "catalog.db") {
		t.Fatalf("catalog entry %+v", cat)
	}
	if ten.Dir != filepath.Join(dataDir, "tenants") || ten.Pattern != "*.db" ||
		ten.ReplicaURL != "file://"+filepath.Join(dataDir, "replica", "tenants") ||
		ten.MonitorInterval != time.Second || ten.SyncInterval != 500*time.Millisecond {
		t.Fatalf("tenants entry %+v", ten)
	}
	if cfg.TenantDir() != ten {
		t.Fatal("TenantDir")
	}
	if got := ten.replicaURLFor(filepath.Join(dataDir, "tenants", "t1.db")); got != "file://"+filepath.Join(dataDir, "replica", "tenants", "t1.db") {
		t.Fatalf("tenant replica url %q", got)
	}
	if len(cfg.Levels) != 4 || cfg.Levels[1].Interval != 30*time.Second || cfg.Levels[3].Interval != time.Hour {
		t.Fatalf("levels %v", cfg.Levels)
	}
	if cfg.SnapshotInterval != 24*time.Hour || cfg.L0Retention != 5*time.Minute {
		t.Fatalf("snapshot %v, l0 %v", cfg.SnapshotInterval, cfg.L0Retention)
	}

	// Which files the entries cover.
	for path, want := range map[string]bool{
		filepath.Join(dataDir, "catalog.db"):             true,
		filepath.Join(dataDir, "tenants", "a.db"):        true,
		filepath.Join(dataDir, "tenants", "a.db-wal"):    false,
		filepath.Join(dataDir, "tenants", "sub", "a.db"): false,
		filepath.Join(dataDir, "other.db"):               false,
	} {
		if _, _, err := cfg.Lookup(path); (err == nil) != want {
			t.Errorf("Lookup(%s): %v, want covered=%v", path, err, want)
		}
	}
}

func TestParseConfigS3AndEnv(t *testing.T) {
	t.Setenv("SILO_BUCKET", "backups")
	t.Setenv("SILO_MON", "3s")
	yml := `
levels:
  - interval: 10s
  - interval: 1m
snapshot:
  interval: 1h
  retention: 72h
l0-retention: 2m
dbs:
  - path: /srv/silo/catalog.db
    replica:
      url: s3://${SILO_BUCKET}/silo/catalog.db?endpoint=https://s3.example.com&region=auto
  - dir: ./relative/tenants
    pattern: "*.sqlite"
    watch: true
    monitor-interval: $SILO_MON
    checkpoint-interval: 2m
    replica:
      url: s3://${SILO_BUCKET}/silo/tenants?region=eu-west-1
      sync-interval: 5s
`
	cfg, err := ParseConfig(strings.NewReader(yml), "data")
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	cat, ten := cfg.DBs[0], cfg.DBs[1]
	if cat.Path != "/srv/silo/catalog.db" || cat.ReplicaURL != "s3://backups/silo/catalog.db?endpoint=https://s3.example.com&region=auto" {
		t.Fatalf("catalog %+v", cat)
	}
	if ten.Dir != filepath.Join(wd, "relative", "tenants") || ten.MonitorInterval != 3*time.Second ||
		ten.CheckpointInterval != 2*time.Minute || ten.SyncInterval != 5*time.Second {
		t.Fatalf("tenants %+v", ten)
	}
	if got := ten.replicaURLFor(filepath.Join(ten.Dir, "t1.sqlite")); got != "s3://backups/silo/tenants/t1.sqlite?region=eu-west-1" {
		t.Fatalf("tenant url %q", got)
	}
	if len(cfg.Levels) != 3 || cfg.Levels[1].Interval != 10*time.Second || cfg.Levels[2].Interval != time.Minute {
		t.Fatalf("levels %v", cfg.Levels)
	}
	if cfg.SnapshotInterval != time.Hour || cfg.SnapshotRetention != 72*time.Hour || cfg.L0Retention != 2*time.Minute {
		t.Fatalf("snapshot/l0 %+v", cfg)
	}
	if cfg.DataDir != filepath.Join(wd, "data") {
		t.Fatalf("data dir %q", cfg.DataDir)
	}
}

func TestParseConfigPaths(t *testing.T) {
	dataDir := "/var/lib/silo"
	for in, want := range map[string]string{
		"data/catalog.db":    "/var/lib/silo/catalog.db",
		"./data/x.db":        "/var/lib/silo/x.db",
		"data":               "/var/lib/silo",
		"/abs/data/x.db":     "/abs/data/x.db",
		"database/x.db":      "", // relative to the working dir, not the data dir
		"sqlite://data/x.db": "/var/lib/silo/x.db",
	} {
		yml := "dbs:\n  - path: " + in + "\n    replica:\n      url: file:///r\n"
		cfg, err := ParseConfig(strings.NewReader(yml), dataDir)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if want == "" {
			wd, _ := os.Getwd()
			want = filepath.Join(wd, in)
		}
		if got := cfg.DBs[0].Path; got != want {
			t.Errorf("%s -> %s, want %s", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"file:data/replica":      "file:///var/lib/silo/replica",
		"file:backups/x":         "", // working dir
		"file:///abs/replica":    "file:///abs/replica",
		"file://localhost/abs/r": "file:///abs/r",
	} {
		yml := "dbs:\n  - path: /x.db\n    replica:\n      url: " + in + "\n"
		cfg, err := ParseConfig(strings.NewReader(yml), dataDir)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if want == "" {
			wd, _ := os.Getwd()
			want = "file://" + filepath.Join(wd, "backups", "x")
		}
		if got := cfg.DBs[0].ReplicaURL; got != want {
			t.Errorf("%s -> %s, want %s", in, got, want)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	for name, yml := range map[string]string{
		"no replica":        "dbs:\n  - path: data/a.db\n",
		"path and dir":      "dbs:\n  - path: a.db\n    dir: data\n    pattern: '*.db'\n    replica: {url: 'file:///r'}\n",
		"dir no pattern":    "dbs:\n  - dir: data\n    replica: {url: 'file:///r'}\n",
		"bad pattern":       "dbs:\n  - dir: data\n    pattern: '['\n    replica: {url: 'file:///r'}\n",
		"file host":         "dbs:\n  - path: a.db\n    replica: {url: 'file://data/replica'}\n",
		"unsupported":       "dbs:\n  - path: a.db\n    replica: {url: 'gs://bucket/x'}\n",
		"s3 no bucket":      "dbs:\n  - path: a.db\n    replica: {url: 's3:///x'}\n",
		"unknown field":     "dbs:\n  - path: a.db\n    replicas: [{url: 'file:///r'}]\n",
		"unknown top-level": "addr: ':9090'\ndbs: []\n",
		"bad duration":      "l0-retention: soon\n",
		"bad level":         "levels:\n  - interval: 0s\n",
	} {
		if _, err := ParseConfig(strings.NewReader(yml), t.TempDir()); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := ReadConfigFile(filepath.Join(t.TempDir(), "missing.yml"), "data"); err == nil {
		t.Error("missing file: no error")
	}
	// An empty file is a config with nothing to replicate.
	if cfg, err := ParseConfig(strings.NewReader(""), "data"); err != nil || len(cfg.DBs) != 0 {
		t.Errorf("empty: %v %v", cfg, err)
	}
}

func TestDSNPath(t *testing.T) {
	wd, _ := os.Getwd()
	for in, want := range map[string]string{
		"file:/a/b.db?_pragma=x":     "/a/b.db",
		"/a/b.db":                    "/a/b.db",
		"file:///a/b.db":             "/a/b.db",
		"file:rel.db?x=1":            filepath.Join(wd, "rel.db"),
		":memory:":                   "",
		"file::memory:?cache=shared": "",
	} {
		if got := dsnPath(in); got != want {
			t.Errorf("dsnPath(%q) = %q, want %q", in, got, want)
		}
	}
}
