package replication

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"strings"
	"sync"

	"github.com/benbjohnson/litestream"
	"github.com/benbjohnson/litestream/file"
	"github.com/benbjohnson/litestream/s3"
)

// clients builds replica clients. File replicas are plain directories and
// cost nothing. S3 replicas share one initialised client per bucket and
// endpoint: Litestream's s3.ReplicaClient builds its own AWS client and
// http.Transport in Init, and with one client per tenant every tenant that
// was ever open keeps an idle keep-alive socket and two goroutines for up to
// 90 s after it is unregistered.
type clients struct {
	mu sync.Mutex
	s3 map[string]*s3.ReplicaClient // by scheme://host?query, initialised
}

// forURL returns a client for the replica at rawURL (as normalised by
// ParseConfig). For S3 it initialises the shared client on first use, which
// may contact the endpoint.
func (c *clients) forURL(ctx context.Context, rawURL string) (litestream.ReplicaClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "file":
		return file.NewReplicaClient(u.Path), nil
	case "s3":
		base, err := c.s3Base(ctx, u)
		if err != nil {
			return nil, err
		}
		return s3WithPath(base, strings.Trim(u.Path, "/")), nil
	default:
		return nil, fmt.Errorf("replication: unsupported replica url %q", rawURL)
	}
}

func (c *clients) s3Base(ctx context.Context, u *url.URL) (*s3.ReplicaClient, error) {
	key := u.Scheme + "://" + u.Host + "?" + u.RawQuery
	c.mu.Lock()
	defer c.mu.Unlock()
	if base := c.s3[key]; base != nil {
		return base, nil
	}
	// Let Litestream parse bucket, region, endpoint and path style from the
	// URL exactly as its CLI does; the path is set per tenant below.
	rc, err := litestream.NewReplicaClientFromURL((&url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/", RawQuery: u.RawQuery}).String())
	if err != nil {
		return nil, err
	}
	base := rc.(*s3.ReplicaClient)
	// The stock CLI maps these onto the AWS variables; do the same without
	// touching the process environment.
	if base.AccessKeyID == "" {
		base.AccessKeyID = os.Getenv("LITESTREAM_ACCESS_KEY_ID")
		base.SecretAccessKey = os.Getenv("LITESTREAM_SECRET_ACCESS_KEY")
	}
	if err := base.Init(ctx); err != nil {
		return nil, err
	}
	if c.s3 == nil {
		c.s3 = map[string]*s3.ReplicaClient{}
	}
	c.s3[key] = base
	return base, nil
}

// s3WithPath returns a copy of the initialised base client that stores under
// path. In v0.5.18 every object key is built from the client's Path field,
// and Init is a no-op once the unexported AWS client is set, so a copy made
// after Init shares the AWS client, its uploader and its one http.Transport,
// and differs only in Path and logger. The copy goes through reflect because
// the struct holds a sync.Mutex (only used by Init, which the copy never
// runs for real). Re-check this when upgrading Litestream; TestS3 covers it.
func s3WithPath(base *s3.ReplicaClient, path string) *s3.ReplicaClient {
	c := new(s3.ReplicaClient)
	reflect.ValueOf(c).Elem().Set(reflect.ValueOf(base).Elem())
	c.Path = path
	return c
}
