package catalog

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/silohq/silo/internal/sqlite"
)

// TestFreshNeverAnswersFromAnEarlierCheck pins the rule that makes sharing
// checks safe: a request that arrives while a check is running (which may
// have read data_version before a commit the request already saw) waits for
// the next check instead of taking that one's answer.
func TestFreshNeverAnswersFromAnEarlierCheck(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "catalog.db")
	c, err := Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	other, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	l := c.cache
	read, resume := make(chan struct{}), make(chan struct{})
	l.afterRead = func() {
		l.afterRead = nil // only the first check pauses
		close(read)
		<-resume
	}
	first := make(chan uint64)
	go func() {
		gen, err := l.fresh(ctx)
		if err != nil {
			t.Error(err)
		}
		first <- gen
	}()
	<-read // the first check has read data_version and is paused
	// Another connection commits; then a request arrives.
	if _, err := other.ExecContext(ctx, "CREATE TABLE scratch (x)"); err != nil {
		t.Fatal(err)
	}
	second := make(chan uint64)
	go func() {
		gen, err := l.fresh(ctx)
		if err != nil {
			t.Error(err)
		}
		second <- gen
	}()
	// Give the second request time to join a check before the first ends.
	waitFor(t, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.next != nil
	})
	close(resume)
	g1, g2 := <-first, <-second
	if g2 <= g1 {
		t.Fatalf("the request that arrived after the commit got generation %d, the earlier check's %d: it was answered from a stale check", g2, g1)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 2000 {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("condition not met in 2 s")
}
