package repotest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// repoRoot is the top of the work tree, found by git like the other checks.
func repoRoot(t *testing.T) string {
	t.Helper()
	return strings.TrimSpace(gitOutput(t, nil, "rev-parse", "--show-toplevel"))
}

// runScript runs a script of scripts/ with extra environment and returns its
// exit code and combined output.
func runScript(t *testing.T, env []string, script string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot(t), "scripts", script), args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), out.String()
	default:
		t.Fatalf("running %s: %v", script, err)
		return 0, ""
	}
}

// TestWithoutServiceStartsRemovesItsPolicy: stack.sh installs MariaDB and
// RabbitMQ under a policy-rc.d that refuses service starts. It used to leave
// /usr/sbin/policy-rc.d behind, which blocks every later service start on the
// host. The policy must hold while the command runs and be gone after it,
// whether the command succeeds or fails.
func TestWithoutServiceStartsRemovesItsPolicy(t *testing.T) {
	for _, tc := range []struct {
		name string
		exit string
		want int
	}{
		{"command succeeds", "exit 0", 0},
		{"command fails", "exit 3", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			policy := filepath.Join(t.TempDir(), "policy-rc.d")
			// During the command: the policy exists and refuses (exit 101).
			check := `test -x "$PAYFLOW_POLICY_RC_D" || exit 90; "$PAYFLOW_POLICY_RC_D"; test $? -eq 101 || exit 91; ` + tc.exit
			code, out := runScript(t, []string{"PAYFLOW_POLICY_RC_D=" + policy}, "without-service-starts.sh", "sh", "-c", check)
			if code != tc.want {
				t.Fatalf("exit %d, want %d (90: no policy during the command, 91: policy allowed starts): %s", code, tc.want, out)
			}
			if _, err := os.Stat(policy); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("policy-rc.d left behind after the command (stat: %v)", err)
			}
		})
	}
}

// TestWithoutServiceStartsKeepsAnExistingPolicy: a policy-rc.d that existed
// before is the host's; it is neither rewritten nor removed.
func TestWithoutServiceStartsKeepsAnExistingPolicy(t *testing.T) {
	policy := filepath.Join(t.TempDir(), "policy-rc.d")
	const theirs = "#!/bin/sh\n# the host's own\nexit 0\n"
	if err := os.WriteFile(policy, []byte(theirs), 0o755); err != nil {
		t.Fatal(err)
	}
	code, out := runScript(t, []string{"PAYFLOW_POLICY_RC_D=" + policy}, "without-service-starts.sh", "true")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	got, err := os.ReadFile(policy)
	if err != nil {
		t.Fatalf("the existing policy-rc.d was removed: %v", err)
	}
	if string(got) != theirs {
		t.Errorf("the existing policy-rc.d was rewritten:\n%s", got)
	}
}

// TestStackShRunsNoInternalFunctions: stack.sh used to run any of its
// internal functions named with a leading underscore ("_log", "_down",
// "_start_payflow ..."). Only its named commands may run. "_log" is harmless
// on the old script too: it would print and exit 0.
func TestStackShRunsNoInternalFunctions(t *testing.T) {
	env := []string{"PAYFLOW_DEV_DIR=" + t.TempDir()}
	for _, args := range [][]string{{"_log", "hello"}, {"log", "hello"}, {"start-payflow", "geth"}, {"start-payflow"},
		{"stop-node", "tron"}, {"stop-node"}, {"start-node", "start_geth"}, {"start-node"}} {
		code, out := runScript(t, env, "stack.sh", args...)
		if code == 0 {
			t.Errorf("stack.sh %s ran (exit 0): %s", strings.Join(args, " "), out)
		}
		if !strings.Contains(out, "usage") {
			t.Errorf("stack.sh %s: no usage message: %s", strings.Join(args, " "), out)
		}
	}
}

// TestSearchAttributesHaveOneSource: the search attributes were listed in Go,
// in stack.sh and in docker-compose.yml, copied by hand. The scripts must read
// deploy/search-attributes.txt (checked against Go by
// workflows.TestSearchAttributesFile) and name no attribute themselves.
func TestSearchAttributesHaveOneSource(t *testing.T) {
	root := repoRoot(t)
	list, err := os.ReadFile(filepath.Join(root, "deploy", "search-attributes.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(string(list), "\n") {
		if fields := strings.Fields(line); len(fields) > 0 && !strings.HasPrefix(fields[0], "#") {
			names = append(names, fields[0])
		}
	}
	for _, file := range []string{"scripts/stack.sh", "docker-compose.yml"} {
		text, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(text), "deploy/search-attributes.txt") {
			t.Errorf("%s does not read deploy/search-attributes.txt", file)
		}
		for _, name := range names {
			if strings.Contains(string(text), name) {
				t.Errorf("%s names the search attribute %s itself", file, name)
			}
		}
	}
}
