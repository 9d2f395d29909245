package bench

import "testing"

func TestPicker(t *testing.T) {
	const n, draws = 100, 100000
	perm := permutation(1, n)
	count := func(dist string) []int {
		p := newPicker(1, 0, n, dist, 1.1, perm)
		c := make([]int, n)
		for range draws {
			c[p.next()]++
		}
		return c
	}
	z := count(DistZipf)
	hot := int(perm[0])
	for i, c := range z {
		if i != hot && c >= z[hot] {
			t.Fatalf("zipf: tenant %d drawn %d times, hottest %d only %d", i, c, hot, z[hot])
		}
	}
	// P(rank 0) = 1/H(100, 1.1) ≈ 0.22.
	if f := float64(z[hot]) / draws; f < 0.18 || f > 0.26 {
		t.Errorf("zipf: hottest tenant has %.3f of draws, want about 0.22", f)
	}
	for i, c := range count(DistUniform) {
		if c < draws/n/2 || c > draws/n*2 {
			t.Errorf("uniform: tenant %d drawn %d times", i, c)
		}
	}
	if one := newPicker(1, 0, 1, DistZipf, 1.1, []int32{0}); one.next() != 0 {
		t.Error("one tenant")
	}
}

func TestFittingTenants(t *testing.T) {
	for _, c := range []struct{ n, limit, want int }{
		{10000, 20000, 6000},
		{10000, 1 << 20, 10000},
		{20, 20000, 20},
		{10000, 0, 10000},
	} {
		if got := fittingTenants(c.n, c.limit); got != c.want {
			t.Errorf("fittingTenants(%d, %d) = %d, want %d", c.n, c.limit, got, c.want)
		}
	}
}
