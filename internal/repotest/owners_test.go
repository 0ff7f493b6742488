package repotest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// createTable finds the tables a migration creates.
var createTable = regexp.MustCompile("(?i)\\bCREATE\\s+TABLE\\s+(?:IF\\s+NOT\\s+EXISTS\\s+)?`?([A-Za-z0-9_]+)`?")

// sqlTableRef finds a table named by SQL in a Go string: after FROM, INTO,
// UPDATE, JOIN or TABLE (DELETE FROM is FROM; INSERT IGNORE INTO is INTO),
// with optional backquotes and any whitespace, newlines included. The
// keywords are upper case, as all of payflow's SQL is: prose such as an
// error's "reading from wallets" is not a query.
var sqlTableRef = regexp.MustCompile("\\b(?:FROM|INTO|UPDATE|JOIN|TABLE(?:\\s+IF\\s+(?:NOT\\s+)?EXISTS)?)\\s+`?([A-Za-z0-9_]+)`?")

// generatedFile is the line `go generate` tools put above generated code.
var generatedFile = regexp.MustCompile(`(?m)^// Code generated .* DO NOT EDIT\.$`)

// TestEachTableHasOneOwner fails for every table of deploy/migrations that
// the SQL of more than one package names: each table has one owning package
// and everyone else calls its API. It reads every Go file of the module but
// tests, generated code, integration/ (end-to-end tests that check rows
// directly) and the dev stack's files. A table no package names is logged,
// not failed: it may be touched only by migrations.
func TestEachTableHasOneOwner(t *testing.T) {
	root := strings.TrimSpace(gitOutput(t, nil, "rev-parse", "--show-toplevel"))
	tables := migrationTables(t, filepath.Join(root, "deploy", "migrations"))
	if len(tables) < 10 {
		t.Fatalf("found only %d tables in deploy/migrations: is the path right?", len(tables))
	}

	owners := map[string]map[string][]string{} // table → package dir → files
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			switch {
			case rel == ".":
				return nil
			case strings.HasPrefix(d.Name(), "."), rel == "integration", rel == "bin", d.Name() == "testdata", d.Name() == "vendor":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if generatedFile.Match(src) {
			return nil
		}
		files++
		refs, err := tablesInGo(rel, src, tables)
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(filepath.Dir(rel))
		for _, table := range refs {
			if owners[table] == nil {
				owners[table] = map[string][]string{}
			}
			owners[table][pkg] = append(owners[table][pkg], filepath.Base(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 20 {
		t.Fatalf("scanned only %d Go files: is the module root right?", files)
	}

	names := make([]string, 0, len(tables))
	for table := range tables {
		names = append(names, table)
	}
	sort.Strings(names)
	var shared []string
	for _, table := range names {
		pkgs := owners[table]
		switch {
		case len(pkgs) == 0:
			t.Logf("table %s: no package names it (touched only by migrations?)", table)
		case len(pkgs) > 1:
			shared = append(shared, table+": "+describeOwners(pkgs))
		default:
			t.Logf("table %s: %s", table, describeOwners(pkgs))
		}
	}
	if len(shared) > 0 {
		t.Errorf("%d tables are named by the SQL of more than one package; keep each table's SQL in its owner and call its API:\n  %s",
			len(shared), strings.Join(shared, "\n  "))
	}
}

// TestTableScanner proves the scanner finds what TestEachTableHasOneOwner
// relies on, so that test cannot pass by finding nothing.
func TestTableScanner(t *testing.T) {
	tables := migrationTables(t, "")
	if len(tables) != 0 {
		t.Fatalf("migrationTables of no directory = %v", tables)
	}
	schema := "CREATE TABLE IF NOT EXISTS wallets (\n id INT\n);\ncreate table `balances` (x INT);\nCREATE TABLE\n  journal (y INT);\nALTER TABLE wallets ADD KEY k (id);"
	got := map[string]bool{}
	for _, m := range createTable.FindAllStringSubmatch(schema, -1) {
		got[m[1]] = true
	}
	if !got["wallets"] || !got["balances"] || !got["journal"] || len(got) != 3 {
		t.Fatalf("createTable found %v, want wallets, balances, journal", got)
	}

	known := map[string]bool{"wallets": true, "balances": true, "journal": true, "deposits": true, "outbox": true, "leases": true, "nonces": true}
	cases := []struct {
		name string
		src  string
		want []string
	}{
		{"raw string across lines", "package p\nconst q = `SELECT a\n  FROM\n    wallets w\n  JOIN balances b ON b.x = w.x`", []string{"balances", "wallets"}},
		{"backquoted name", "package p\nvar q = \"INSERT INTO `deposits` (a) VALUES (?)\"", []string{"deposits"}},
		{"update and delete", "package p\nfunc f() { db.Exec(\"UPDATE journal SET a=1\"); db.Exec(\"DELETE FROM outbox WHERE id=?\") }", []string{"journal", "outbox"}},
		{"concatenated literals", "package p\nvar q = \"SELECT a FROM \" +\n\t\"leases WHERE chain=?\"", []string{"leases"}},
		{"insert ignore and on duplicate", "package p\nvar q = `INSERT IGNORE INTO nonces (a) VALUES (?) ON DUPLICATE KEY UPDATE a=a`", []string{"nonces"}},
		{"create table if not exists", "package p\nvar q = \"CREATE TABLE IF NOT EXISTS outbox (id INT)\"", []string{"outbox"}},
		{"prose is not SQL", "package p\nvar e = \"reading from wallets: %w\"", nil},
		{"unknown table", "package p\nvar q = \"SELECT 1 FROM schema_migrations\"", nil},
		{"prefix is not the table", "package p\nvar q = \"SELECT 1 FROM wallets_old\"", nil},
		{"identifiers are not SQL", "package p\nvar wallets, FROM int", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := tablesInGo("p.go", []byte(c.src), known)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("tablesInGo = %v, want %v", got, c.want)
			}
		})
	}
}

// migrationTables returns the tables the .sql files of dir create.
func migrationTables(t *testing.T, dir string) map[string]bool {
	t.Helper()
	tables := map[string]bool{}
	if dir == "" {
		return tables
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.sql"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range paths {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range createTable.FindAllStringSubmatch(string(src), -1) {
			tables[strings.ToLower(m[1])] = true
		}
	}
	return tables
}

// tablesInGo returns, sorted and once each, the known tables that the SQL in
// the string literals of one Go file names. A chain of literals joined by +
// is read as one string, so a query split across lines is still seen.
func tablesInGo(name string, src []byte, known map[string]bool) ([]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	found := map[string]bool{}
	scan := func(s string) {
		for _, m := range sqlTableRef.FindAllStringSubmatch(s, -1) {
			if table := strings.ToLower(m[1]); known[table] {
				found[table] = true
			}
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BinaryExpr:
			if n.Op == token.ADD {
				var b strings.Builder
				joinLiterals(n, &b)
				scan(b.String())
			}
		case *ast.BasicLit:
			if n.Kind == token.STRING {
				if s, err := strconv.Unquote(n.Value); err == nil {
					scan(s)
				}
			}
		}
		return true
	})
	out := make([]string, 0, len(found))
	for table := range found {
		out = append(out, table)
	}
	sort.Strings(out)
	return out, nil
}

// joinLiterals writes the string literals of a + chain in order; any other
// operand becomes a space, so it neither joins nor splits a word.
func joinLiterals(e ast.Expr, b *strings.Builder) {
	switch e := e.(type) {
	case *ast.BinaryExpr:
		if e.Op == token.ADD {
			joinLiterals(e.X, b)
			joinLiterals(e.Y, b)
			return
		}
	case *ast.ParenExpr:
		joinLiterals(e.X, b)
		return
	case *ast.BasicLit:
		if e.Kind == token.STRING {
			if s, err := strconv.Unquote(e.Value); err == nil {
				b.WriteString(s)
				return
			}
		}
	}
	b.WriteByte(' ')
}

// describeOwners writes "pkg (file, file); pkg (file)" in a stable order.
func describeOwners(pkgs map[string][]string) string {
	var parts []string
	for pkg, files := range pkgs {
		sort.Strings(files)
		parts = append(parts, pkg+" ("+strings.Join(uniq(files), ", ")+")")
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

func uniq(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
