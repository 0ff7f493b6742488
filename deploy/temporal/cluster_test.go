// Package temporal holds the Temporal server configuration of `make up
// TEMPORAL=cluster` (cluster.tmpl.yaml, dynamicconfig.yaml). Its tests check
// that scripts/stack.sh fills in every field of the template, and that
// payflow's search attributes fit SQL visibility.
package temporal

import (
	"bufio"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestTemplateIsFilledIn: stack.sh replaces every %NAME% field of
// cluster.tmpl.yaml, and no other.
func TestTemplateIsFilledIn(t *testing.T) {
	want := map[string]bool{}
	for _, f := range regexp.MustCompile(`%[A-Z_]+%`).FindAllString(read(t, "cluster.tmpl.yaml"), -1) {
		want[f] = true
	}
	if len(want) == 0 {
		t.Fatal("no fields in cluster.tmpl.yaml")
	}
	got := map[string]bool{}
	for _, m := range regexp.MustCompile(`s\|(%[A-Z_]+%)\|`).FindAllStringSubmatch(read(t, "../../scripts/stack.sh"), -1) {
		got[m[1]] = true
	}
	var missing, extra []string
	for f := range want {
		if !got[f] {
			missing = append(missing, f)
		}
	}
	for f := range got {
		if !want[f] {
			extra = append(extra, f)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing)+len(extra) > 0 {
		t.Errorf("scripts/stack.sh: fields not filled in %v, unknown %v", missing, extra)
	}
}

// sqlVisibilityColumns is how many custom search attributes of each type
// SQL visibility holds per namespace: the generated columns of the server's
// PostgreSQL visibility schema (schema/postgresql/v12/visibility, Keyword01
// to Keyword10 and so on; MySQL 8's are the same).
var sqlVisibilityColumns = map[string]int{
	"Keyword": 10, "KeywordList": 3, "Text": 3, "Int": 3, "Double": 3, "Bool": 3, "Datetime": 3,
}

// TestSearchAttributesFitSQLVisibility: a cluster on SQL visibility refuses
// a search attribute beyond its columns, which the dev server (no such
// limit) would take.
func TestSearchAttributesFitSQLVisibility(t *testing.T) {
	f, err := os.Open("../search-attributes.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	count := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if _, ok := sqlVisibilityColumns[fields[1]]; !ok {
			t.Errorf("search attribute %s: type %s has no SQL visibility column", fields[0], fields[1])
		}
		count[fields[1]]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(count) == 0 {
		t.Fatal("no search attributes read")
	}
	for typ, n := range count {
		if limit := sqlVisibilityColumns[typ]; n > limit {
			t.Errorf("%d %s search attributes; SQL visibility holds %d", n, typ, limit)
		}
	}
}
