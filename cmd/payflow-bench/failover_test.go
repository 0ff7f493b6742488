package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStopStackWorkersStopsEveryWorker: with several workers
// (PAYFLOW_WORKERS), every one named by a pid file is stopped and named for
// the restart; a stale pid file and one naming a process group are left
// alone.
func TestStopStackWorkersStopsEveryWorker(t *testing.T) {
	dev := t.TempDir()
	pids := filepath.Join(dev, "pids")
	require.NoError(t, os.MkdirAll(pids, 0o755))
	exited := map[string]chan error{}
	for _, name := range []string{"worker", "worker-2"} {
		cmd := exec.Command("sleep", "60")
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }() // reaped at once: a zombie still answers kill -0
		exited[name] = done
		require.NoError(t, os.WriteFile(filepath.Join(pids, name+".pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(pids, "worker-3.pid"), []byte("0"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(pids, "worker.sum"), []byte("abc"), 0o644))

	stopped := stopStackWorkers(dev)
	slices.Sort(stopped)
	require.Equal(t, []string{"worker", "worker-2"}, stopped)
	for name, done := range exited {
		require.Error(t, <-done, name) // ended by the SIGTERM
		require.NoFileExists(t, filepath.Join(pids, name+".pid"))
	}
	require.FileExists(t, filepath.Join(pids, "worker-3.pid"))
	require.FileExists(t, filepath.Join(pids, "worker.sum"))
	require.Empty(t, stopStackWorkers(t.TempDir()))
}

// TestBenchStackDirsFollowTheStack: the dev directory is stack.json's, the
// binaries PAYFLOW_BIN_DIR's or the repository's bin/, and stack.sh is
// pointed at both, with worker-N's ports from the stack's own http_addr.
func TestBenchStackDirsFollowTheStack(t *testing.T) {
	root := t.TempDir()
	dev := filepath.Join(root, ".dev-cluster")
	require.NoError(t, os.MkdirAll(filepath.Join(root, "scripts"), 0o755))
	require.NoError(t, os.MkdirAll(dev, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "scripts", "stack.sh"), nil, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dev, "stack.json"), []byte("{}"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dev, "config.json"), []byte(`{"http_addr":"127.0.0.1:9380"}`), 0o644))
	t.Setenv("PAYFLOW_STACK", filepath.Join(dev, "stack.json"))
	t.Setenv("PAYFLOW_HTTP_PORT", "")

	t.Setenv("PAYFLOW_BIN_DIR", "")
	d, err := benchStackDirs()
	require.NoError(t, err)
	require.Equal(t, stackDirs{root: root, dev: dev, bin: filepath.Join(root, "bin")}, d)

	t.Setenv("PAYFLOW_BIN_DIR", "/opt/cluster-bin")
	d, err = benchStackDirs()
	require.NoError(t, err)
	require.Equal(t, "/opt/cluster-bin", d.bin)
	cmd := d.stackScript("start-payflow", "worker-2")
	require.Equal(t, []string{filepath.Join(root, "scripts", "stack.sh"), "start-payflow", "worker-2"}, cmd.Args)
	env := cmd.Env[len(cmd.Env)-3:]
	require.Equal(t, []string{"PAYFLOW_DEV_DIR=" + dev, "PAYFLOW_BIN_DIR=/opt/cluster-bin", "PAYFLOW_HTTP_PORT=9380"}, env)
}
