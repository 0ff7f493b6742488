package repotest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestWorkflowsAreFamilyNeutral: workflows and activities speak the chain
// contract (package chain) only, never a chain family's own types: no
// package they build on, test files aside, imports go-ethereum. The EVM
// family (payflow/chain/evm/...) is wired in by workers/.
func TestWorkflowsAreFamilyNeutral(t *testing.T) {
	for _, pkg := range []string{"./workflows", "./activities", "./chain"} {
		cmd := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, pkg)
		cmd.Dir = repoRoot(t)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || strings.HasPrefix(f[0], "github.com/ethereum/") {
				continue
			}
			for _, imp := range f[1:] {
				if strings.HasPrefix(imp, "github.com/ethereum/") {
					t.Errorf("%s builds on %s, which imports %s: speak package chain's contract instead", pkg, f[0], imp)
					break
				}
			}
		}
	}
}
