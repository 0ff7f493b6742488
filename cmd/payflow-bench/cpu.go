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
// `make up` (pid files in .dev/pids), to show where a phase's CPU went.
func cpuSeconds() map[string]float64 {
	out := map[string]float64{}
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
		pid := strings.TrimSpace(string(b))
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			continue
		}
		// Fields after the ")" of the command name; utime and stime are 14 and 15.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseFloat(f[11], 64)
		s, _ := strconv.ParseFloat(f[12], 64)
		out[strings.TrimSuffix(e.Name(), ".pid")] = (u + s) / 100 // clock ticks
	}
	return out
}

// cpuSplit formats CPU ms per payment by process between two readings.
func cpuSplit(before, after map[string]float64, payments int) string {
	type kv struct {
		k string
		v float64
	}
	var xs []kv
	for k, a := range after {
		xs = append(xs, kv{k, a - before[k]})
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i].v > xs[j].v })
	var parts []string
	for _, x := range xs {
		parts = append(parts, fmt.Sprintf("%s %.1f", x.k, x.v*1000/float64(max(payments, 1))))
	}
	return "CPU ms per payment: " + strings.Join(parts, ", ")
}
