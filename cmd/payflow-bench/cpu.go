package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"payflow/internal/stacktest"
)

// cpuSeconds reads user+system CPU seconds of each stack process started by
// `make up` (pid files in .dev/pids), and of this process ("bench": the load
// generator, and the fair baseline's workflow worker), to show where a
// phase's CPU went.
func cpuSeconds() map[string]float64 {
	out := map[string]float64{}
	if v, ok := procCPU("self"); ok {
		out["bench"] = v
	}
	p, err := stacktest.Path()
	if err != nil {
		return out
	}
	dir := filepath.Join(filepath.Dir(p), "pids")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".pid") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if v, ok := procCPU(strings.TrimSpace(string(b))); ok {
			out[strings.TrimSuffix(e.Name(), ".pid")] = v
		}
	}
	return out
}

// procCPU is a process's user+system CPU seconds from /proc/<pid>/stat.
func procCPU(pid string) (float64, bool) {
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, false
	}
	// Fields after the ")" of the command name; utime and stime are 14 and 15.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	if len(f) < 13 {
		return 0, false
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100, true // clock ticks
}

// cpuSplit formats CPU ms per unit (a payment, a transaction) by process
// between two readings of n units, and returns the total of all processes
// (the bench's own included: for the fair baseline it runs the workflow
// worker, for the broadcaster it signs and sends; for payflow's payments it
// only generates load).
func cpuSplit(before, after map[string]float64, n int, unit string) (string, float64) {
	type kv struct {
		k string
		v float64
	}
	var xs []kv
	for k, a := range after {
		if b, ok := before[k]; ok && a >= b {
			xs = append(xs, kv{k, a - b}) // a process restarted in between is left out
		}
	}
	sort.Slice(xs, func(i, j int) bool {
		if xs[i].v != xs[j].v {
			return xs[i].v > xs[j].v
		}
		return xs[i].k < xs[j].k
	})
	per := func(v float64) float64 { return v * 1000 / float64(max(n, 1)) }
	var parts []string
	total := 0.0
	for _, x := range xs {
		total += x.v
		if per(x.v) >= 0.05 { // a process idle over the batch is not listed
			parts = append(parts, fmt.Sprintf("%s %.1f", x.k, per(x.v)))
		}
	}
	return fmt.Sprintf("CPU ms per %s: total %.1f; ", unit, per(total)) + strings.Join(parts, ", "), per(total)
}
