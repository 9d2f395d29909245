// Package latency records durations in a fixed, lock-free histogram and
// answers quantiles with about 4 % relative error. It is cheap enough for
// every request and every tenant open.
package latency

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Buckets grow by 2^(1/subBuckets); 16 sub-buckets per power of two give a
// worst-case relative error of about 4.4 %, from 1 µs up to about 18 minutes.
const (
	subBuckets = 16
	octaves    = 30
	nBuckets   = octaves * subBuckets
)

// Histogram counts durations. The zero value is ready to use.
type Histogram struct {
	counts [nBuckets]atomic.Int64
	total  atomic.Int64
	max    atomic.Int64
}

func bucket(d time.Duration) int {
	us := uint64(d / time.Microsecond)
	if us < 1 {
		return 0
	}
	oct := bits.Len64(us) - 1 // floor(log2)
	// The fraction within the octave picks the sub-bucket.
	frac := float64(us)/float64(uint64(1)<<oct) - 1
	i := oct*subBuckets + int(frac*subBuckets)
	if i >= nBuckets {
		i = nBuckets - 1
	}
	return i
}

// upper returns the upper bound of bucket i.
func upper(i int) time.Duration {
	oct, sub := i/subBuckets, i%subBuckets
	us := math.Ldexp(1+float64(sub+1)/subBuckets, oct)
	return time.Duration(us * float64(time.Microsecond))
}

// Observe records d.
func (h *Histogram) Observe(d time.Duration) {
	h.counts[bucket(d)].Add(1)
	h.total.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			break
		}
	}
}

// Count is how many durations were observed.
func (h *Histogram) Count() int64 { return h.total.Load() }

// Max is the largest duration observed.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Quantile returns the q-quantile (0 < q ≤ 1), or 0 with no observations.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	var seen int64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			if u := upper(i); i < nBuckets-1 && u < h.Max() {
				return u
			}
			return h.Max()
		}
	}
	return h.Max()
}
