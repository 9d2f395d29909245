package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/silohq/silo/internal/fleet"
	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal, where a progress bar helps;
// elsewhere (CI, pipes, files) we log plain lines instead.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newProgress returns a bar on a terminal and a batch logger elsewhere.
func newProgress(w io.Writer, what string) progress {
	if isTerminal(w) {
		return &barProgress{w: w, what: what}
	}
	return &lineProgress{w: w, what: what}
}

// progress is what the fleet and restores report to.
type progress = fleet.Progress

// barProgress draws done/total, rate, ETA and the failure count.
type barProgress struct {
	w      io.Writer
	what   string
	mu     sync.Mutex
	bar    *progressbar.ProgressBar
	failed int
}

func (p *barProgress) Start(total int) {
	p.bar = progressbar.NewOptions(total,
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetDescription(p.what),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("tenants"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

func (p *barProgress) Step(slug string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.failed++
		p.bar.Describe(fmt.Sprintf("%s (%d failed)", p.what, p.failed))
	}
	_ = p.bar.Add(1)
}

func (p *barProgress) Finish() { _ = p.bar.Finish() }

// lineProgress logs one line per batch (every 5 % of the tenants, at least
// every 100) at most once a second, and one at the end: a small fleet done
// within a second gets one line, not one per tenant.
type lineProgress struct {
	w                   io.Writer
	what                string
	mu                  sync.Mutex
	total, done, failed int
	batch               int
	start, last         time.Time
}

func (p *lineProgress) Start(total int) {
	p.total, p.start, p.last = total, time.Now(), time.Now()
	p.batch = max(1, min(100, total/20))
}

func (p *lineProgress) Step(slug string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	if err != nil {
		p.failed++
	}
	if p.done == p.total || (p.done%p.batch == 0 && time.Since(p.last) >= time.Second) {
		p.last = time.Now()
		el := time.Since(p.start)
		rate := float64(p.done) / el.Seconds()
		eta := time.Duration(float64(p.total-p.done)/rate) * time.Second
		fmt.Fprintf(p.w, "%s: %d/%d tenants, %d failed, %.0f/s, eta %s\n", p.what, p.done, p.total, p.failed, rate, eta.Round(time.Second))
	}
}

func (p *lineProgress) Finish() {}
