package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"payflow/chain/lease"
	"payflow/internal/stacktest"
	"payflow/ledger"
	"payflow/protocol"
)

// failoverRun is one failover measurement: two workers, the chain lease
// holder killed with SIGKILL under a steady stream of payments.
type failoverRun struct {
	leaseTTL   time.Duration
	sent       int
	answered   int
	duplicates int
	nextAnswer time.Duration // from the SIGKILL to the first answer after it
	maxGap     time.Duration // the longest silence between answers after the kill
	takeover   time.Duration // from the SIGKILL to another holder of the lease
	err        string
}

// benchFailover measures, for the lease TTL payflow had (15s) and the one it
// has now, how long answers stop when the worker holding the chain lease is
// killed with SIGKILL while a second worker stands by. The stack's own
// workers (worker, and worker-2 ... with PAYFLOW_WORKERS) are stopped for the
// phase and started again after it, so the bench's two are the only ones.
//
// withFormer also runs the former 15 s lease in the same invocation, for the
// comparison (make bench); QUICK=1 runs the current setting alone.
func benchFailover(ctx context.Context, st *stacktest.Stack, rate int, dur time.Duration, withFormer bool) []result {
	dirs, err := benchStackDirs()
	if err != nil {
		return []result{{Name: "failover", Measured: "error", Verdict: "FAIL (setup)", Note: err.Error()}}
	}
	stopped := stopStackWorkers(dirs.dev)
	defer func() {
		for _, name := range stopped {
			_ = dirs.stackScript("start-payflow", name).Run()
		}
	}()
	var before failoverRun
	if withFormer {
		before = failoverOnce(ctx, st, dirs, 15*time.Second, rate, dur)
	}
	now := failoverOnce(ctx, st, dirs, 2*time.Second, rate, dur)
	r := result{Name: "failover: next answer after SIGKILL of the lease holder", Target: "≤ 3 s"}
	if now.err != "" || before.err != "" {
		r.Measured, r.Verdict, r.Note = "error", "FAIL (setup)", strings.TrimSpace(now.err+" "+before.err)
		return []result{r}
	}
	r.Measured = fmt.Sprintf("%.1f s", now.nextAnswer.Seconds())
	r.Verdict = verdict(now.nextAnswer <= 3*time.Second)
	former := "the former 15 s lease is compared by a full make bench, not QUICK=1"
	if withFormer {
		former = fmt.Sprintf("as before (lease_ttl %s, same run): next answer %.1f s, takeover %.1f s, longest silence %.1f s",
			before.leaseTTL, before.nextAnswer.Seconds(), before.takeover.Seconds(), before.maxGap.Seconds())
	}
	r.Note = fmt.Sprintf("lease_ttl %s: lease taken over after %.1f s, longest silence %.1f s; %s; %d payments at %d/s, kill at a third",
		now.leaseTTL, now.takeover.Seconds(), now.maxGap.Seconds(), former, now.sent, rate)
	once := result{Name: "failover: payments exactly once", Target: "all", Measured: fmt.Sprintf("%d/%d answered once",
		now.answered+before.answered-now.duplicates-before.duplicates, now.sent+before.sent)}
	once.Verdict = "met"
	if now.answered != now.sent || before.answered != before.sent || now.duplicates+before.duplicates > 0 {
		once.Verdict = "FAIL (correctness: lost or duplicated answers)"
	}
	return []result{r, once}
}

func failoverOnce(ctx context.Context, st *stacktest.Stack, dirs stackDirs, ttl time.Duration, rate int,
	dur time.Duration) failoverRun {
	run := failoverRun{leaseTTL: ttl}
	fail := func(err error) failoverRun { run.err = err.Error(); return run }
	db, err := sql.Open("mysql", st.MySQLDSN)
	if err != nil {
		return fail(err)
	}
	defer db.Close()
	cfgPath, err := failoverConfig(dirs.dev, ttl)
	if err != nil {
		return fail(err)
	}
	defer os.Remove(cfgPath)
	env, err := readEnv(filepath.Join(dirs.dev, "payflow.env"))
	if err != nil {
		return fail(err)
	}
	var workers []*exec.Cmd
	for i := 0; i < 2; i++ {
		cmd := exec.Command(filepath.Join(dirs.bin, "payflow-worker"), "-config", cfgPath)
		cmd.Env = append(os.Environ(), env...)
		logf, err := os.Create(filepath.Join(dirs.dev, "logs", fmt.Sprintf("bench-failover-worker-%d.log", i)))
		if err != nil {
			return fail(err)
		}
		defer logf.Close()
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			return fail(err)
		}
		workers = append(workers, cmd)
		defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	}
	pids := map[int]bool{workers[0].Process.Pid: true, workers[1].Process.Pid: true}
	holderPid := func() int {
		h, _ := lease.Holder(ctx, db, "chain-ETH")
		parts := strings.Split(h, "-")
		if len(parts) < 3 {
			return 0
		}
		pid, _ := strconv.Atoi(parts[len(parts)-2])
		return pid
	}
	// The old holder (a stack worker) may still hold an unexpired lease:
	// wait until one of ours holds it, and both are polling.
	deadline := time.Now().Add(ttl + 60*time.Second)
	for !pids[holderPid()] {
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("lease_ttl %s: no bench worker took the chain lease", ttl))
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)

	conn, err := amqp.Dial(st.AMQPURL)
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	var mu sync.Mutex
	answers := map[string][]time.Time{}
	prefix := stacktest.RandomID("bench-failover-") + "-"
	ch, err := conn.Channel()
	if err != nil {
		return fail(err)
	}
	ds, err := ch.Consume("pay.withdraw.return.queue", "", true, false, false, false, nil)
	if err != nil {
		return fail(err)
	}
	go func() {
		for d := range ds {
			var m map[string]any
			if json.Unmarshal(d.Body, &m) != nil {
				continue
			}
			if qid, _ := m["queue_id"].(string); strings.HasPrefix(qid, prefix) {
				mu.Lock()
				answers[qid] = append(answers[qid], time.Now())
				mu.Unlock()
			}
		}
	}()
	pub, err := conn.Channel()
	if err != nil {
		return fail(err)
	}
	hot, err := ledger.NewWallets(db, nil).ByLabel(ctx, "ETH", "hot")
	if err != nil {
		return fail(err)
	}
	from := hot.Address
	n := int(dur.Seconds()) * rate
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	var killAt time.Time
	takeover := make(chan time.Duration, 1)
	for i := 0; i < n; i++ {
		<-tick.C
		if i == n/3 {
			pid := holderPid()
			if !pids[pid] {
				return fail(fmt.Errorf("lease_ttl %s: the lease holder is not a bench worker", ttl))
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
			killAt = time.Now()
			go func() {
				for time.Since(killAt) < 2*time.Minute {
					if p := holderPid(); p != 0 && p != pid {
						takeover <- time.Since(killAt)
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
				takeover <- -1
			}()
		}
		qid := fmt.Sprintf("%s%d", prefix, i)
		body := fmt.Sprintf(`{"queue_id":%q,"from_address":%q,"to_address":%q,"amount":0.01,"chain":"ETH","symbol":"USDT","timestamp":%d}`,
			qid, from, stacktest.RandomAddress(), time.Now().Unix())
		signed, err := protocol.SignBody(st.SignKey, []byte(body))
		if err != nil {
			return fail(err)
		}
		if err := pub.PublishWithContext(ctx, "pay.exchange", "pay.withdraw.routing.key", true, false,
			amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: signed}); err != nil {
			return fail(err)
		}
		run.sent++
	}
	wait := time.Now().Add(3 * time.Minute)
	for time.Now().Before(wait) {
		mu.Lock()
		got := len(answers)
		mu.Unlock()
		if got >= n {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // any duplicate
	run.takeover = <-takeover
	mu.Lock()
	defer mu.Unlock()
	var after []time.Time
	for _, ts := range answers {
		run.answered++
		run.duplicates += len(ts) - 1
		if ts[0].After(killAt) {
			after = append(after, ts[0])
		}
	}
	sort.Slice(after, func(i, j int) bool { return after[i].Before(after[j]) })
	if len(after) > 0 {
		run.nextAnswer = after[0].Sub(killAt)
		prev := killAt
		for _, t := range after {
			run.maxGap = max(run.maxGap, t.Sub(prev))
			prev = t
		}
	}
	return run
}

// stopStackWorkers stops the stack's own workers, every process named by a
// worker.pid or worker-N.pid in dev/pids, and returns the names of those it
// stopped, to start again.
func stopStackWorkers(dev string) []string {
	files, _ := filepath.Glob(filepath.Join(dev, "pids", "worker-*.pid"))
	files = append([]string{filepath.Join(dev, "pids", "worker.pid")}, files...)
	var stopped []string
	var pids []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		// pid 0 or below would signal a process group, the bench's own.
		if err != nil || pid <= 0 || syscall.Kill(pid, syscall.SIGTERM) != nil {
			continue
		}
		stopped = append(stopped, strings.TrimSuffix(filepath.Base(f), ".pid"))
		pids = append(pids, pid)
	}
	// They stop together: up to 30 s for all, as scripts/stack.sh gives one.
	for i := 0; i < 150; i++ {
		alive := false
		for _, pid := range pids {
			alive = alive || syscall.Kill(pid, 0) == nil
		}
		if !alive {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, name := range stopped {
		_ = os.Remove(filepath.Join(dev, "pids", name+".pid"))
	}
	return stopped
}

// failoverConfig writes the stack's worker config (dev/config.json) with
// lease_ttl and no HTTP listener (the stack's ports stay free).
func failoverConfig(dev string, ttl time.Duration) (string, error) {
	b, err := os.ReadFile(filepath.Join(dev, "config.json"))
	if err != nil {
		return "", err
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		return "", err
	}
	cfg["lease_ttl"] = ttl.String()
	cfg["http_addr"] = ""
	out, _ := json.Marshal(cfg)
	f, err := os.CreateTemp("", "payflow-failover-*.json")
	if err != nil {
		return "", err
	}
	defer f.Close()
	_, err = f.Write(out)
	return f.Name(), err
}

// readEnv reads payflow.env's KEY='value' lines as KEY=value.
func readEnv(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || k == "" || strings.HasPrefix(k, "#") {
			continue
		}
		out = append(out, k+"="+strings.Trim(v, `'"`))
	}
	return out, sc.Err()
}

// stackDirs is where the running stack keeps its files, as
// scripts/stack.sh laid them out.
type stackDirs struct {
	root string // the repository, holding scripts/stack.sh
	dev  string // the directory of stack.json: config, env, pids, logs (PAYFLOW_DEV_DIR)
	bin  string // the stack's binaries: PAYFLOW_BIN_DIR, default <root>/bin
}

// benchStackDirs finds the stack the bench runs against: its dev directory
// is the one holding stack.json (PAYFLOW_STACK, or .dev above the working
// directory), the repository the one above it or, for a dev directory kept
// elsewhere, the working directory.
func benchStackDirs() (stackDirs, error) {
	p, err := stacktest.Path()
	if err != nil {
		return stackDirs{}, err
	}
	d := stackDirs{dev: filepath.Dir(p), root: filepath.Dir(filepath.Dir(p))}
	if _, err := os.Stat(filepath.Join(d.root, "scripts", "stack.sh")); err != nil {
		if d.root, err = os.Getwd(); err != nil {
			return stackDirs{}, err
		}
		if _, err := os.Stat(filepath.Join(d.root, "scripts", "stack.sh")); err != nil {
			return stackDirs{}, fmt.Errorf("finding scripts/stack.sh beside %s or in the working directory: %w", d.dev, err)
		}
	}
	d.bin = os.Getenv("PAYFLOW_BIN_DIR")
	if d.bin == "" {
		d.bin = filepath.Join(d.root, "bin")
	}
	return d, nil
}

// stackScript is scripts/stack.sh with args, pointed at this stack's dev
// and bin directories whatever the caller's environment says. Its worker-N
// listen on the stack's HTTP port + N: without PAYFLOW_HTTP_PORT set, that
// port is taken from config.json's http_addr, the first worker's.
func (d stackDirs) stackScript(args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(d.root, "scripts", "stack.sh"), args...)
	cmd.Env = append(os.Environ(), "PAYFLOW_DEV_DIR="+d.dev, "PAYFLOW_BIN_DIR="+d.bin)
	if os.Getenv("PAYFLOW_HTTP_PORT") == "" {
		if port := configHTTPPort(d.dev); port != "" {
			cmd.Env = append(cmd.Env, "PAYFLOW_HTTP_PORT="+port)
		}
	}
	return cmd
}

// configHTTPPort is the port of dev/config.json's http_addr, "" if it has
// none.
func configHTTPPort(dev string) string {
	b, err := os.ReadFile(filepath.Join(dev, "config.json"))
	if err != nil {
		return ""
	}
	var cfg struct {
		HTTPAddr string `json:"http_addr"`
	}
	if json.Unmarshal(b, &cfg) != nil {
		return ""
	}
	_, port, err := net.SplitHostPort(cfg.HTTPAddr)
	if err != nil {
		return ""
	}
	return port
}
