package repotest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// sniffLen is how much of a file git itself reads to decide it is binary.
const sniffLen = 8000

// textWithNUL lists tracked files that are text on purpose despite a NUL byte
// in their first sniffLen bytes. Empty: add a path here only with a reason.
var textWithNUL = map[string]bool{}

// TestNoTrackedBinaries fails if the index holds a file with a NUL byte in
// its first 8000 bytes (git's own binary heuristic): build artefacts such as
// a compiled payflow-bench must never be committed. It reads the staged
// blobs, not the work tree, so a binary deleted from disk but still tracked
// is caught. Without git it fails rather than skips: a check that silently
// does not run is no check.
func TestNoTrackedBinaries(t *testing.T) {
	root := gitOutput(t, nil, "rev-parse", "--show-toplevel")
	root = strings.TrimSpace(root)

	// "<mode> <object> <stage>\t<path>" per entry, NUL-terminated.
	staged := gitOutput(t, nil, "-C", root, "ls-files", "--stage", "-z")
	type entry struct{ object, path string }
	var entries []entry
	for _, rec := range strings.Split(staged, "\x00") {
		if rec == "" {
			continue
		}
		meta, path, ok := strings.Cut(rec, "\t")
		fields := strings.Fields(meta)
		if !ok || len(fields) != 3 {
			t.Fatalf("unexpected git ls-files record %q", rec)
		}
		if fields[0] == "160000" { // a submodule: a commit, not a blob
			continue
		}
		entries = append(entries, entry{object: fields[1], path: path})
	}
	if len(entries) == 0 {
		t.Fatal("git ls-files lists nothing: is this the payflow repository?")
	}

	var in bytes.Buffer
	for _, e := range entries {
		fmt.Fprintln(&in, e.object)
	}
	out := gitOutput(t, &in, "-C", root, "cat-file", "--batch")
	r := bufio.NewReader(strings.NewReader(out))
	var binaries []string
	for _, e := range entries {
		header, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading git cat-file header for %s: %v", e.path, err)
		}
		var object, kind string
		var size int64
		if _, err := fmt.Sscanf(header, "%s %s %d", &object, &kind, &size); err != nil {
			t.Fatalf("git cat-file header %q for %s: %v", header, e.path, err)
		}
		body := make([]byte, size+1) // the blob, then a newline
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatalf("reading %s from git: %v", e.path, err)
		}
		body = body[:size]
		if len(body) > sniffLen {
			body = body[:sniffLen]
		}
		if bytes.IndexByte(body, 0) >= 0 && !textWithNUL[e.path] {
			binaries = append(binaries, fmt.Sprintf("%s (%d bytes)", e.path, size))
		}
	}
	if len(binaries) > 0 {
		t.Errorf("git tracks binary files; remove them (git rm --cached) and ignore them in .gitignore:\n  %s",
			strings.Join(binaries, "\n  "))
	}
}

func gitOutput(t *testing.T, stdin io.Reader, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Stdin = stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}
