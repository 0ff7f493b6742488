package workflows_test

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// searchAttributesFile is the one list of payflow's search attributes, read
// by scripts/stack.sh and docker-compose.yml.
const searchAttributesFile = "../deploy/search-attributes.txt"

// keyTypes maps the temporal.NewSearchAttributeKey* constructors to the type
// names the Temporal CLI registers.
var keyTypes = map[string]string{
	"NewSearchAttributeKeyKeyword":     "Keyword",
	"NewSearchAttributeKeyString":      "Text",
	"NewSearchAttributeKeyInt64":       "Int",
	"NewSearchAttributeKeyFloat64":     "Double",
	"NewSearchAttributeKeyBool":        "Bool",
	"NewSearchAttributeKeyTime":        "Datetime",
	"NewSearchAttributeKeyKeywordList": "KeywordList",
}

// TestSearchAttributesFile: the search attributes the workflows package
// declares (every package-level temporal.NewSearchAttributeKey* call, found in
// its source) are exactly those of deploy/search-attributes.txt, with the
// same types. A key added in Go but not registered by `make up` or compose
// would make every upsert of it fail at run time.
func TestSearchAttributesFile(t *testing.T) {
	want := readSearchAttributesFile(t)
	got := declaredSearchAttributes(t)
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("workflows declares search attributes\n  %v\n%s lists\n  %v\nkeep them equal", got, searchAttributesFile, want)
	}
}

func readSearchAttributesFile(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(searchAttributesFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var attrs []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			t.Fatalf("%s: %q is not \"Name Type\"", searchAttributesFile, line)
		}
		attrs = append(attrs, fields[0]+" "+fields[1])
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if len(attrs) == 0 {
		t.Fatalf("%s lists no search attribute", searchAttributesFile)
	}
	return attrs
}

// declaredSearchAttributes returns "Name Type" for every package-level var
// initialised with temporal.NewSearchAttributeKey*("Name") in the package's
// non-test files.
func declaredSearchAttributes(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var attrs []string
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.VAR {
				continue
			}
			for _, spec := range gen.Specs {
				for _, value := range spec.(*ast.ValueSpec).Values {
					call, ok := value.(*ast.CallExpr)
					if !ok {
						continue
					}
					sel, ok := call.Fun.(*ast.SelectorExpr)
					if !ok || !strings.HasPrefix(sel.Sel.Name, "NewSearchAttributeKey") {
						continue
					}
					typ, ok := keyTypes[sel.Sel.Name]
					if !ok {
						t.Fatalf("%s: unknown search attribute constructor %s", fset.Position(call.Pos()), sel.Sel.Name)
					}
					lit, ok := call.Args[0].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("%s: search attribute name is not a string literal", fset.Position(call.Pos()))
					}
					attr, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					attrs = append(attrs, attr+" "+typ)
				}
			}
		}
	}
	if len(attrs) == 0 {
		t.Fatal("found no search attribute key in the workflows package")
	}
	return attrs
}
