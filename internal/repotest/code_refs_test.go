package repotest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCodeRefersToTheRepoOnly: code, scripts and configuration (tests
// included) name no product document or issue the repository does not hold;
// a comment says the reason itself.
func TestCodeRefersToTheRepoOnly(t *testing.T) {
	root := repoRoot(t)
	out, err := exec.Command("git", "-C", root, "ls-files").Output()
	if err != nil {
		t.Fatalf("listing the repository's files: %v", err)
	}
	outside := regexp.MustCompile(`\bSPEC\b|§|(?i:\bissue\s+#?\d+|\bdefect\s+#?\d+)`)
	checked := 0
	for _, rel := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !isCode(rel) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			if os.IsNotExist(err) { // deleted in the work tree, not yet committed
				continue
			}
			t.Fatal(err)
		}
		checked++
		for i, line := range strings.Split(string(b), "\n") {
			if m := outside.FindString(line); m != "" {
				t.Errorf("%s:%d: %q refers outside the repository", rel, i+1, m)
			}
		}
	}
	if checked < 100 {
		t.Fatalf("only %d code files checked: the listing is wrong", checked)
	}
}

// isCode reports whether a tracked file is code, a script or configuration
// (markdown has TestDocsReferToTheRepoOnly; generated bindings are left out).
func isCode(rel string) bool {
	base := filepath.Base(rel)
	if strings.HasPrefix(rel, "internal/repotest/") || strings.HasPrefix(rel, "chain/token/") {
		return false
	}
	switch filepath.Ext(base) {
	case ".go", ".sh", ".sql", ".yml", ".yaml", ".tmpl":
		return true
	}
	return base == "Makefile" || base == "Dockerfile" || strings.HasPrefix(rel, ".ci/")
}
