package repotest

import (
	"os/exec"
	"strings"
	"testing"
)

// familyExceptions are the packages under workflows and activities still
// allowed to import go-ethereum, and why. Each is a debt: the list only
// shrinks.
var familyExceptions = map[string]string{
	// Wallet keys are secp256k1 keys generated and opened in ledger/wallets.go;
	// they belong with the EVM family's signer.
	"payflow/ledger": "wallet keys",
}

// TestWorkflowsAreFamilyNeutral: workflows and activities speak the chain
// contract (package chain) only, never a chain family's own types: no
// package they build on, test files aside, imports go-ethereum (but those
// in familyExceptions). The EVM family (payflow/chain/evm) is wired in by
// workers/.
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
			if _, ok := familyExceptions[f[0]]; ok {
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
