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
// `make up` (pid files in the stack's pids directory), and of this process
// ("bench": the load generator, and the fair baseline's workflow worker), to
// show where a phase's CPU went. Each figure covers the process and its
// descendants: PostgreSQL's work is in the postmaster's backends, RabbitMQ's
// in the Erlang VM its start script runs.
func cpuSeconds() map[string]float64 {
	pids := ""
	if p, err := stacktest.Path(); err == nil {
		pids = filepath.Join(filepath.Dir(p), "pids")
	}
	return cpuSecondsIn("/proc", pids, os.Getpid())
}

// cpuSecondsIn is cpuSeconds over a /proc-like directory procRoot, the pid
// files in pidsDir ("" for none) and self as the bench's own pid.
func cpuSecondsIn(procRoot, pidsDir string, self int) map[string]float64 {
	procs := readProcs(procRoot)
	out := map[string]float64{}
	if v, ok := treeCPU(procs, self); ok {
		out["bench"] = v
	}
	if pidsDir == "" {
		return out
	}
	entries, _ := os.ReadDir(pidsDir)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".pid") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(pidsDir, e.Name()))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			continue
		}
		if v, ok := treeCPU(procs, pid); ok {
			out[strings.TrimSuffix(e.Name(), ".pid")] = v
		}
	}
	return out
}

// procStat is what a process's stat file says about its CPU.
type procStat struct {
	ppid int
	// ticks is utime+stime+cutime+cstime in clock ticks: the process's own
	// CPU and that of the children it has reaped (a PostgreSQL backend that
	// exited between two readings is in its postmaster's cutime).
	ticks float64
}

// readProcs reads <root>/<pid>/stat of every process under root (a
// /proc-like directory). A process gone between the listing and the read is
// left out.
func readProcs(root string) map[int]procStat {
	entries, _ := os.ReadDir(root)
	out := make(map[int]procStat, len(entries))
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, e.Name(), "stat"))
		if err != nil {
			continue
		}
		if s, ok := parseStat(b); ok {
			out[pid] = s
		}
	}
	return out
}

// parseStat parses one /proc/<pid>/stat line. The command name in
// parentheses may hold spaces and parentheses itself, so the fields are
// counted from its last ")".
func parseStat(b []byte) (procStat, bool) {
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 > len(b) {
		return procStat{}, false
	}
	// Fields after the name: state, ppid (4th field), ...; utime, stime,
	// cutime and cstime are the 14th to 17th.
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 15 {
		return procStat{}, false
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, false
	}
	s := procStat{ppid: ppid}
	for _, x := range f[11:15] {
		v, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return procStat{}, false
		}
		s.ticks += v
	}
	return s, true
}

// treeCPU is the CPU seconds of pid and of its descendants alive in procs,
// each with the children it reaped; false if pid is not in procs. A
// descendant whose parent exited before it was reaped is reparented away
// from the tree and not counted.
func treeCPU(procs map[int]procStat, pid int) (float64, bool) {
	if _, ok := procs[pid]; !ok {
		return 0, false
	}
	children := map[int][]int{}
	for p, s := range procs {
		children[s.ppid] = append(children[s.ppid], p)
	}
	ticks := 0.0
	seen := map[int]bool{}
	stack := []int{pid}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[p] { // a malformed tree must not loop
			continue
		}
		seen[p] = true
		ticks += procs[p].ticks
		stack = append(stack, children[p]...)
	}
	return ticks / 100, true // clock ticks
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

// cpuPer is CPU ms per unit by process between two readings of n units (a
// process restarted in between is left out).
func cpuPer(before, after map[string]float64, n int) map[string]float64 {
	out := map[string]float64{}
	for k, a := range after {
		if b, ok := before[k]; ok && a >= b {
			out[k] = (a - b) * 1000 / float64(max(n, 1))
		}
	}
	return out
}

// temporalProcs are the processes that are Temporal: the dev server, or a
// cluster's server and its PostgreSQL.
var temporalProcs = map[string]bool{"temporal": true, "temporal-server": true, "postgres": true}

// outsideTemporal is the CPU ms per unit of every process but Temporal's.
func outsideTemporal(by map[string]float64) float64 {
	t := 0.0
	for k, v := range by {
		if !temporalProcs[k] {
			t += v
		}
	}
	return t
}
