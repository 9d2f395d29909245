package bench

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/silohq/silo/internal/silo"
)

// WriteText writes r for people.
func WriteText(w io.Writer, r *Report) {
	dist := r.Dist
	if r.Dist == DistZipf {
		dist = fmt.Sprintf("zipf s=%g", r.ZipfS)
	}
	where := fmt.Sprintf("max-open-tenants %d", r.MaxOpenTenants)
	if r.Target != "" {
		where = "server at " + r.Target
	}
	fmt.Fprintf(w, "silo bench: %d tenants (%s), %s, mix %s, concurrency %d, %.1fs measured after %.3gs warm-up, %s\n",
		r.Tenants, r.Placement, dist, r.Mix, r.Concurrency, r.DurationS, r.WarmupS, where)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if r.Target != "" {
		// Nothing provisioned; the process is the generator, not the server.
	} else if r.Provisioned > 0 {
		fmt.Fprintf(tw, "provisioning\t%d tenants in %.1fs (%.2f ms each)\n", r.Provisioned, r.ProvisionS, r.ProvisionPer)
	} else {
		fmt.Fprintf(tw, "provisioning\tnone (tenants reused from the data dir)\n")
	}
	fmt.Fprintf(tw, "throughput\t%.0f req/s (%d requests: %d reads, %d writes)\n", r.ReqPerSec, r.Requests, r.Reads, r.Writes)
	fmt.Fprintf(tw, "latency\tp50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n", r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max)
	fmt.Fprintf(tw, "errors\t%s\n", errorsText(r.Errors))
	c := r.Cache
	if r.Target != "" && c == (Cache{}) {
		fmt.Fprintf(tw, "handle cache\tnot reported (--operator-token reads it from the server)\n")
	} else {
		fmt.Fprintf(tw, "handle cache\thit ratio %.3f (%d hits, %d misses), %d open handles, %d evictions, %d open errors\n",
			c.HitRatio, c.Hits, c.Misses, c.OpenHandles, c.Evictions, c.OpenErrors)
		fmt.Fprintf(tw, "open latency\tp50 %.2f ms  p99 %.2f ms\n", c.OpenLatencyP50, c.OpenLatencyP99)
	}
	if r.Target == "" {
		fmt.Fprintf(tw, "process\tRSS %.0f MB (peak %.0f MB), %d open fds (limit %d)\n", r.Proc.RSSMB, r.Proc.PeakRSSMB, r.Proc.FDs, r.Proc.FDLimit)
	}
	if l := r.ReplicationLag; l != nil {
		if l.Samples == 0 {
			fmt.Fprintf(tw, "replication lag\tno samples (%d probe writes failed, %d not in the replica after 30 s)\n", l.Failed, l.Lost)
		} else {
			fmt.Fprintf(tw, "replication lag\tp50 %.0f ms  p99 %.0f ms  max %.0f ms (%d writes acknowledged → in the replica; %d not there after 30 s; %d probe writes failed)\n", l.P50, l.P99, l.Max, l.Samples, l.Lost, l.Failed)
		}
	}
	tw.Flush()
}

func errorsText(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// WriteComparisonText writes c as tables.
func WriteComparisonText(w io.Writer, c *Comparison) {
	if len(c.Scenarios) > 0 {
		r := c.Scenarios[0]
		dist := r.Dist
		if r.Dist == DistZipf {
			dist = fmt.Sprintf("zipf s=%g", r.ZipfS)
		}
		fmt.Fprintf(w, "silo bench --compare: mix %s, %s, concurrency %d, %.3gs per scenario after %.3gs warm-up\n",
			r.Mix, dist, r.Concurrency, r.DurationS, r.WarmupS)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "scenario\ttenants\tslots\treq/s\tvs ceiling\tp50 ms\tp99 ms\thit ratio\topen p50/p99 ms\terrors\tRSS MB\tfds\t")
		for _, r := range c.Scenarios {
			// Placements without a file per tenant open no handles: no
			// slots, hit ratio or open latency to show (0 would read as
			// "every request missed").
			slots, hits, opens := fmt.Sprint(r.MaxOpenTenants), fmt.Sprintf("%.3f", r.Cache.HitRatio),
				fmt.Sprintf("%.2f/%.2f", r.Cache.OpenLatencyP50, r.Cache.OpenLatencyP99)
			if r.Placement != "" && r.Placement != string(silo.StrategyDatabase) {
				slots, hits, opens = "-", "-", "-"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%.2f\t%.2f\t%.2f\t%s\t%s\t%d\t%.0f\t%d\t\n",
				r.Scenario, r.Tenants, slots, r.ReqPerSec, r.CeilingRatio, r.Latency.P50, r.Latency.P99,
				hits, opens, r.ErrorCount(), r.Proc.RSSMB, r.Proc.FDs)
		}
		tw.Flush()
	}
	if len(c.WriteScaling) > 0 {
		fmt.Fprintf(w, "\nwrite scaling: writes/s over %d tenants (uniform, all cached), own files vs the shared file\n", c.WriteTenants)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "concurrency\tdatabase w/s\tp99 ms\tshared w/s\tp99 ms\tdatabase/shared\terrors\t")
		for _, p := range c.WriteScaling {
			ratio := 0.0
			if p.SharedPerSec > 0 {
				ratio = p.DatabasePerSec / p.SharedPerSec
			}
			fmt.Fprintf(tw, "%d\t%.0f\t%.2f\t%.0f\t%.2f\t%.2f\t%d\t\n", p.Concurrency, p.DatabasePerSec, p.DatabaseP99,
				p.SharedPerSec, p.SharedP99, ratio, p.DatabaseErrors+p.SharedErrors)
		}
		tw.Flush()
	}
	if c.Provisioned > 0 {
		fmt.Fprintf(w, "\nprovisioned %d tenants in %.1fs; ", c.Provisioned, c.ProvisionS)
	} else {
		fmt.Fprintf(w, "\nno provisioning (data dir reused); ")
	}
	fmt.Fprintf(w, "total %.0fs\n", c.ElapsedS)
}
