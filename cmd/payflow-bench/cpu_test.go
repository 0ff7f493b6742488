package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCPUSplitCountsEveryProcessPerPayment: the split is each process's CPU
// over the batch per payment, largest first, with a total that includes the
// bench itself (the fair baseline's workflow worker runs in it); a process
// restarted during the batch (its counter went down) is left out rather
// than counted negative.
func TestCPUSplitCountsEveryProcessPerPayment(t *testing.T) {
	before := map[string]float64{"temporal": 10, "worker": 5, "bench": 1, "starter": 7}
	after := map[string]float64{"temporal": 16, "worker": 8, "bench": 2, "starter": 0.5, "geth": 3}
	s, total := cpuSplit(before, after, 100, "payment")
	require.Equal(t, 100.0, total) // (6 + 3 + 1) s over 100 payments
	require.Equal(t, "CPU ms per payment: total 100.0; temporal 60.0, worker 30.0, bench 10.0", s)
}

// fakeProc writes a /proc-like stat file for pid under root.
func fakeProc(t *testing.T, root string, pid, ppid int, comm string, utime, stime, cutime, cstime int) {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(pid))
	require.NoError(t, os.MkdirAll(dir, 0o755))
	stat := fmt.Sprintf("%d (%s) S %d %d %d 0 -1 4194304 100 0 0 0 %d %d %d %d 20 0 1 0 100 1000 10\n",
		pid, comm, ppid, pid, pid, utime, stime, cutime, cstime)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644))
}

// TestCPUSecondsCountsDescendants: a component's CPU is its process's, its
// live descendants' and the children each of them reaped (PostgreSQL's
// backends under the postmaster, live or exited); a single-process
// component is its own CPU; an unrelated process, a pid file naming no
// process and a non-numeric entry are left out.
func TestCPUSecondsCountsDescendants(t *testing.T) {
	proc, pids := t.TempDir(), t.TempDir()
	fakeProc(t, proc, 1, 0, "init", 900, 900, 900, 900)
	fakeProc(t, proc, 100, 1, "postgres", 10, 5, 30, 20)                                            // postmaster, 50 ticks reaped
	fakeProc(t, proc, 101, 100, "postgres: payflow temporal 127.0.0.1(41234) idle", 200, 100, 0, 0) // a backend; its name has spaces and parentheses
	fakeProc(t, proc, 102, 100, "postgres: checkpointer", 7, 3, 0, 0)
	fakeProc(t, proc, 103, 101, "a) b (c", 40, 60, 0, 0) // a grandchild
	fakeProc(t, proc, 200, 1, "mariadbd", 250, 50, 0, 0)
	fakeProc(t, proc, 300, 1, "bench", 80, 20, 100, 0) // the bench, with a child it started and reaped
	fakeProc(t, proc, 301, 1, "other", 5000, 5000, 0, 0)
	require.NoError(t, os.MkdirAll(filepath.Join(proc, "self"), 0o755))
	for name, pid := range map[string]string{"postgres": "100\n", "mariadb": "200", "geth": "999"} {
		require.NoError(t, os.WriteFile(filepath.Join(pids, name+".pid"), []byte(pid), 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(pids, "worker.sum"), []byte("300"), 0o644))

	got := cpuSecondsIn(proc, pids, 300)
	require.Equal(t, map[string]float64{
		"postgres": (15 + 50 + 300 + 10 + 100) / 100.0,
		"mariadb":  3,
		"bench":    2,
	}, got)
}

// TestCPUSecondsCountsARealChild: the CPU a busy child burns is counted to
// its parent's tree while it runs, and stays counted once the parent has
// reaped it, though the parent itself only waits.
func TestCPUSecondsCountsARealChild(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	cmd := exec.Command("sh", "-c", "sh -c 'while :; do :; done' & wait; exec sleep 60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	parent := cmd.Process.Pid
	t.Cleanup(func() { _ = syscall.Kill(-parent, syscall.SIGKILL); _ = cmd.Wait() })

	tree := func() (float64, float64, int) {
		procs := readProcs("/proc")
		v, ok := treeCPU(procs, parent)
		require.True(t, ok)
		child := 0
		for p, s := range procs {
			if s.ppid == parent {
				child = p
			}
		}
		return v, procs[parent].ticks / 100, child
	}
	var busy float64
	var child int
	require.Eventually(t, func() bool {
		var own float64
		busy, own, child = tree()
		return child != 0 && busy >= 0.2 && own < busy/2
	}, 30*time.Second, 50*time.Millisecond, "the busy child's CPU is not counted to its parent")

	require.NoError(t, syscall.Kill(child, syscall.SIGKILL))
	require.Eventually(t, func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", child))
		return os.IsNotExist(err)
	}, 10*time.Second, 20*time.Millisecond, "the parent did not reap the child")
	after, _, _ := tree()
	require.GreaterOrEqual(t, after, busy, "the reaped child's CPU was lost")
}
