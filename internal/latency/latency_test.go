package latency

import (
	"testing"
	"time"
)

func TestQuantiles(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 {
		t.Fatal("empty histogram must answer 0")
	}
	for i := 1; i <= 1000; i++ {
		h.Observe(time.Duration(i) * time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.9, 900 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}} {
		got := h.Quantile(tc.q)
		if rel := float64(got-tc.want) / float64(tc.want); rel < -0.05 || rel > 0.05 {
			t.Errorf("q%.2f = %v, want %v ±5%%", tc.q, got, tc.want)
		}
	}
	if h.Max() != time.Second || h.Count() != 1000 {
		t.Errorf("max %v count %d", h.Max(), h.Count())
	}
}

func TestTinyAndHuge(t *testing.T) {
	var h Histogram
	h.Observe(0)
	h.Observe(time.Nanosecond)
	h.Observe(1000 * time.Hour)
	if got := h.Quantile(1); got != 1000*time.Hour {
		t.Errorf("max quantile %v", got)
	}
	if got := h.Quantile(0.3); got > 2*time.Microsecond {
		t.Errorf("low quantile %v", got)
	}
}
