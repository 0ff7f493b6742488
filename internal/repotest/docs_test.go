package repotest

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// readmeMaxLines is the README's budget: a newcomer's first ten minutes.
// Depth belongs in docs/.
const readmeMaxLines = 250

// TestReadmeIsShort fails when README.md grows past readmeMaxLines.
func TestReadmeIsShort(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n > readmeMaxLines {
		t.Errorf("README.md has %d lines, more than %d: move depth into docs/", n, readmeMaxLines)
	}
}

// TestDocLinksResolve: every relative link in README.md and docs/**/*.md
// names a file or directory of the repository, and a link with an anchor
// (`file.md#anchor`, or `#anchor` within the same file) names a heading of
// that file, slugged as GitHub slugs it. Links inside code are not links.
func TestDocLinksResolve(t *testing.T) {
	root := repoRoot(t)
	files := markdownFiles(t, root)
	anchors := map[string]map[string]bool{} // file → its heading slugs
	anchorsOf := func(path string) map[string]bool {
		if a, ok := anchors[path]; ok {
			return a
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		a := headingSlugs(string(b))
		anchors[path] = a
		return a
	}
	checked := 0
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, file)
		for _, l := range markdownLinks(string(b)) {
			if isExternal(l.target) {
				continue
			}
			checked++
			target, anchor, _ := strings.Cut(l.target, "#")
			dest := file
			if target != "" {
				dest = filepath.Join(filepath.Dir(file), filepath.FromSlash(target))
				if _, err := os.Stat(dest); err != nil {
					t.Errorf("%s:%d: link %q: %s does not exist", rel, l.line, l.target, target)
					continue
				}
				if r, err := filepath.Rel(root, dest); err != nil || strings.HasPrefix(r, "..") {
					t.Errorf("%s:%d: link %q leaves the repository", rel, l.line, l.target)
					continue
				}
			}
			if anchor == "" {
				continue
			}
			if !strings.HasSuffix(dest, ".md") {
				t.Errorf("%s:%d: link %q: anchor into a file that is not markdown", rel, l.line, l.target)
				continue
			}
			if !anchorsOf(dest)[anchor] {
				t.Errorf("%s:%d: link %q: no heading of %s has the anchor #%s", rel, l.line, l.target, filepath.Base(dest), anchor)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no relative link found in README.md and docs/: is the link pattern broken?")
	}
}

// TestDocsReferToTheRepoOnly: the documents cite no issue numbers and no
// document the repository does not hold (there is no SPEC in it).
func TestDocsReferToTheRepoOnly(t *testing.T) {
	root := repoRoot(t)
	outside := regexp.MustCompile(`(?i)\bSPEC\s*§|\bissue\s+#?\d+|\bdefect\s+#?\d+`)
	for _, file := range markdownFiles(t, root) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, file)
		for i, line := range strings.Split(string(b), "\n") {
			if m := outside.FindString(line); m != "" {
				t.Errorf("%s:%d: %q refers outside the repository", rel, i+1, m)
			}
		}
	}
}

// markdownFiles lists README.md and every .md file under docs/.
func markdownFiles(t *testing.T, root string) []string {
	t.Helper()
	files := []string{filepath.Join(root, "README.md")}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".md") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("listing docs/: %v", err)
	}
	if len(files) < 2 {
		t.Fatal("docs/ holds no markdown file")
	}
	return files
}

type mdLink struct {
	target string
	line   int
}

var (
	inlineLink = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	codeSpan   = regexp.MustCompile("`[^`]*`")
	heading    = regexp.MustCompile(`^(#{1,6})\s+(.*?)\s*#*\s*$`)
	linkText   = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
)

// markdownLinks returns the inline links of a document outside fenced code
// blocks and code spans.
func markdownLinks(doc string) []mdLink {
	var out []mdLink
	fenced := false
	for i, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		// A code span may hold a link's text ([`chain/`](#x)): keep the
		// brackets' structure by blanking the span's content only.
		line = codeSpan.ReplaceAllStringFunc(line, func(s string) string { return strings.Repeat("x", len(s)) })
		for _, m := range inlineLink.FindAllStringSubmatch(line, -1) {
			out = append(out, mdLink{target: m[1], line: i + 1})
		}
	}
	return out
}

// isExternal reports whether a link target names a scheme (http:, mailto:).
func isExternal(target string) bool {
	scheme, _, ok := strings.Cut(target, ":")
	return ok && !strings.ContainsAny(scheme, "/#.")
}

// headingSlugs returns the anchors GitHub gives a document's headings:
// lower case, markup and punctuation dropped, spaces turned into hyphens, a
// repeated slug suffixed -1, -2, ….
func headingSlugs(doc string) map[string]bool {
	slugs := map[string]bool{}
	seen := map[string]int{}
	fenced := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		m := heading.FindStringSubmatch(line)
		if fenced || m == nil {
			continue
		}
		s := slug(m[2])
		if n := seen[s]; n > 0 {
			seen[s] = n + 1
			s = fmt.Sprintf("%s-%d", s, n)
		} else {
			seen[s] = 1
		}
		slugs[s] = true
	}
	return slugs
}

// slug is GitHub's anchor for a heading's text.
func slug(text string) string {
	text = linkText.ReplaceAllString(text, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestSlug(t *testing.T) {
	for _, c := range []struct{ heading, want string }{
		{"Ports and `.dev/stack.json`", "ports-and-devstackjson"},
		{"Inside `chain/`", "inside-chain"},
		{"Operating payments: `payflowctl payment`", "operating-payments-payflowctl-payment"},
		{"Timing, waits and `make down`", "timing-waits-and-make-down"},
		{"See [the docs](docs/x.md) now", "see-the-docs-now"},
		{"Collection sweeps (归集)", "collection-sweeps-归集"},
	} {
		if got := slug(c.heading); got != c.want {
			t.Errorf("slug(%q) = %q, want %q", c.heading, got, c.want)
		}
	}
	got := headingSlugs("# A\n```sh\n# not a heading\n```\n## A\n### b-c\n")
	for _, want := range []string{"a", "a-1", "b-c"} {
		if !got[want] {
			t.Errorf("headingSlugs misses %q: %v", want, got)
		}
	}
	if got["not-a-heading"] {
		t.Error("a comment in a code block taken for a heading")
	}
}
