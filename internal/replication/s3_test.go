package replication

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benbjohnson/litestream/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// TestS3 replicates several tenants to an in-process S3 server through one
// shared S3 client and restores them.
func TestS3(t *testing.T) {
	ctx := context.Background()
	backend := s3mem.New()
	if err := backend.CreateBucket("silo"); err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(gofakes3.New(backend).Server())
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	// Litestream's S3 Init fails when AWS_CA_BUNDLE is set (litestream#639):
	// it passes the SDK a plain *http.Client, which cannot take extra CAs.
	t.Setenv("AWS_CA_BUNDLE", "")
	os.Unsetenv("AWS_CA_BUNDLE")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))

	dataDir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(filepath.Join(dataDir, "tenants"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SILO_TEST_S3", srv.URL)
	yml := `
dbs:
  - dir: data/tenants
    pattern: "*.db"
    replica:
      url: s3://silo/backups/tenants?endpoint=${SILO_TEST_S3}&region=us-east-1
`
	cfg, err := ParseConfig(strings.NewReader(yml), dataDir)
	if err != nil {
		t.Fatal(err)
	}
	logs := newSnapCounter()
	r, err := New(cfg, slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)

	const n = 5
	want := map[string][]string{}
	start := time.Now()
	for i := range n {
		name := fmt.Sprintf("t%d.db", i)
		path := filepath.Join(dataDir, "tenants", name)
		mustCreate(t, path)
		if err := r.Register(ctx, path); err != nil {
			t.Fatal(err)
		}
		app := mustOpenApp(t, path)
		mustExec(t, app, `INSERT INTO items (v) VALUES (?)`, name)
		want[name] = rows(t, path)
		app.Close()
		if err := r.Unregister(ctx, path); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d tenants registered, written and unregistered in %v over %d TCP connections; warnings: %q",
		n, time.Since(start), conns.Load(), logs.reasons["!"])

	// One AWS client for all of them.
	if len(r.clients.s3) != 1 {
		t.Fatalf("%d shared S3 clients, want 1", len(r.clients.s3))
	}
	for _, base := range r.clients.s3 {
		a, _ := r.clients.forURL(ctx, "s3://silo/x?endpoint="+srv.URL+"&region=us-east-1")
		if awsClient(a.(*s3.ReplicaClient)) != awsClient(base) || a.(*s3.ReplicaClient).Path != "x" {
			t.Fatal("per-tenant client does not share the AWS client")
		}
	}
	if c := conns.Load(); c > 3 {
		t.Errorf("%d TCP connections for %d tenants: transport not shared?", c, n)
	}

	for name, rs := range want {
		out := filepath.Join(t.TempDir(), name)
		if err := r.Restore(ctx, name, out, time.Time{}, 0); err != nil {
			t.Fatal(err)
		}
		if got := rows(t, out); !reflect.DeepEqual(got, rs) {
			t.Fatalf("%s: got %v, want %v", name, got, rs)
		}
		st, err := r.Status(ctx, name)
		if err != nil || st.TXID == 0 {
			t.Fatalf("status %s: %+v %v", name, st, err)
		}
	}
	// The stock S3 layout: <url path>/<file name>/<level %04x>/<min>-<max>.ltx
	objs, err := backend.ListBucket("silo", &gofakes3.Prefix{HasPrefix: true, Prefix: "backups/tenants/t1.db/0000/"}, gofakes3.ListBucketPage{})
	if err != nil || len(objs.Contents) == 0 {
		t.Fatalf("no objects under backups/tenants/t1.db/0000/: %v", err)
	}
	if err := r.DeleteReplica(ctx, "t0.db"); err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(ctx, "t0.db", filepath.Join(t.TempDir(), "gone.db"), time.Time{}, 0); err == nil {
		t.Fatal("restore after DeleteReplica succeeded")
	}
}

func awsClient(c *s3.ReplicaClient) uintptr {
	return reflect.ValueOf(c).Elem().FieldByName("s3").Pointer()
}
