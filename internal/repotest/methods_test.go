package repotest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// maxMethods is the most methods an exported type of chain/ may have: a
// type with more mixes concerns.
const maxMethods = 10

// TestChainTypesAreSmall counts the methods declared on every exported type
// of chain/ and the packages under it (tests and the generated chain/token
// aside) and fails for one with more than maxMethods. Embedding is counted
// too: promoted methods are methods of the type.
func TestChainTypesAreSmall(t *testing.T) {
	root := strings.TrimSpace(gitOutput(t, nil, "rev-parse", "--show-toplevel"))
	var dirs []string
	err := filepath.WalkDir(filepath.Join(root, "chain"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if d.Name() == "token" {
			return filepath.SkipDir // generated bindings
		}
		dirs = append(dirs, path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	methods := map[string]int{}
	embeds := map[string][]string{}
	for _, dir := range dirs {
		rel, _ := filepath.Rel(root, dir)
		fset := token.NewFileSet()
		pkgs, err := parser.ParseDir(fset, dir, func(fi fs.FileInfo) bool {
			return !strings.HasSuffix(fi.Name(), "_test.go")
		}, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, pkg := range pkgs {
			for _, f := range pkg.Files {
				for _, decl := range f.Decls {
					switch d := decl.(type) {
					case *ast.FuncDecl:
						if d.Recv != nil && len(d.Recv.List) == 1 {
							methods[rel+"."+recvName(d.Recv.List[0].Type)]++
						}
					case *ast.GenDecl:
						for _, spec := range d.Specs {
							ts, ok := spec.(*ast.TypeSpec)
							if !ok {
								continue
							}
							if st, ok := ts.Type.(*ast.StructType); ok {
								for _, fld := range st.Fields.List {
									if len(fld.Names) == 0 {
										embeds[rel+"."+ts.Name.Name] = append(embeds[rel+"."+ts.Name.Name], rel+"."+recvName(fld.Type))
									}
								}
							}
						}
					}
				}
			}
		}
	}
	if len(methods) == 0 {
		t.Fatal("no methods found in chain/: is the path right?")
	}
	for name, n := range methods {
		for _, e := range embeds[name] {
			n += methods[e]
		}
		if ast.IsExported(name[strings.LastIndex(name, ".")+1:]) && n > maxMethods {
			t.Errorf("%s has %d methods; at most %d", name, n, maxMethods)
		}
	}
}

// recvName is the type name of a receiver or embedded field.
func recvName(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.StarExpr:
		return recvName(x.X)
	case *ast.Ident:
		return x.Name
	case *ast.IndexExpr:
		return recvName(x.X)
	case *ast.SelectorExpr:
		return x.Sel.Name
	}
	return ""
}
