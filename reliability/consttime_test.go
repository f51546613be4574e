package reliability

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestConstantTimeComparisons checks, on the source, that the credential checks compare
// in constant time: the named functions call crypto/subtle.ConstantTimeCompare, and no
// non-test file of the credential-handling packages compares a revealed secret or a key
// hash with ==, !=, bytes.Equal or strings.EqualFold. (Timing is not measured: API keys
// are looked up by their SHA-256, so the stored-key search does not depend on how much
// of a guess is right, and the final comparisons are the ones checked here.)
func TestConstantTimeComparisons(t *testing.T) {
	mustCall := map[string]string{ // package dir → function (Recv.Name or Name) that must use subtle
		"registry": "Authenticator.Authenticate",
		"httpapi":  "server.admin",
		"extproc":  "apiKey",
	}
	for _, dir := range []string{"registry", "httpapi", "extproc", "okta", "console"} {
		files, err := filepath.Glob(filepath.Join("..", dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		fset := token.NewFileSet()
		found := false
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, name, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.FuncDecl:
					if funcName(n) == mustCall[dir] && callsSubtle(n.Body) {
						found = true
					}
				case *ast.BinaryExpr:
					if (n.Op == token.EQL || n.Op == token.NEQ) && (secretish(n.X) || secretish(n.Y)) {
						t.Errorf("%s: %s compares a secret with %s; use crypto/subtle", fset.Position(n.Pos()), render(n), n.Op)
					}
				case *ast.CallExpr:
					if sel, ok := n.Fun.(*ast.SelectorExpr); ok && (sel.Sel.Name == "Equal" || sel.Sel.Name == "EqualFold") {
						if pkg, ok := sel.X.(*ast.Ident); ok && (pkg.Name == "bytes" || pkg.Name == "strings") {
							for _, a := range n.Args {
								if secretish(a) {
									t.Errorf("%s: %s.%s on a secret; use crypto/subtle", fset.Position(n.Pos()), pkg.Name, sel.Sel.Name)
								}
							}
						}
					}
				}
				return true
			})
		}
		if fn := mustCall[dir]; fn != "" && !found {
			t.Errorf("%s: %s does not call subtle.ConstantTimeCompare", dir, fn)
		}
	}
}

func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	typ := fd.Recv.List[0].Type
	if st, ok := typ.(*ast.StarExpr); ok {
		typ = st.X
	}
	if id, ok := typ.(*ast.Ident); ok {
		return id.Name + "." + fd.Name.Name
	}
	return fd.Name.Name
}

func callsSubtle(body *ast.BlockStmt) bool {
	found := false
	ast.Inspect(body, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "subtle" && sel.Sel.Name == "ConstantTimeCompare" {
				found = true
			}
		}
		return !found
	})
	return found
}

// secretish reports whether e is x.Reveal(), x.Bytes() of a secret, or a key hash
// (a selector named Hash or hash).
func secretish(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.CallExpr:
		if sel, ok := e.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Reveal" {
			return true
		}
	case *ast.SelectorExpr:
		return e.Sel.Name == "Hash" || e.Sel.Name == "hash" || e.Sel.Name == "adminH"
	}
	return false
}

func render(e *ast.BinaryExpr) string {
	name := func(x ast.Expr) string {
		switch x := x.(type) {
		case *ast.SelectorExpr:
			return "…." + x.Sel.Name
		case *ast.CallExpr:
			if sel, ok := x.Fun.(*ast.SelectorExpr); ok {
				return "…." + sel.Sel.Name + "()"
			}
		}
		return "…"
	}
	return name(e.X) + " " + e.Op.String() + " " + name(e.Y)
}
