//lint:file-ignore SA1019 ast.Object (the parser's identifier resolution) is deprecated because it cannot resolve composite-literal keys without types; this check reads plain identifiers in function bodies, which it resolves exactly, and go/types would mean type-checking the module and all its dependencies

package lint

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// finding is one function whose deferred literal reads a named result.
type finding struct {
	pos    token.Position // of the read in the deferred literal
	fn     string         // the function's name
	result string         // the named result read
	ret    token.Position // a return statement with explicit values
}

func (f finding) String() string {
	return fmt.Sprintf("%s: %s: a deferred func reads the named result %s, but %s:%d returns explicit values: "+
		"the deferred call sees what that return assigned (e.g. nil on `return nil, err`), not what the body built; "+
		"keep the value in a local variable, or return the named results bare",
		f.pos, f.fn, f.result, filepath.Base(f.ret.Filename), f.ret.Line)
}

// checkFile reports every function (declared or literal) of file that has
// named results, a deferred function literal reading one of them (other
// than a final result of type error), and a return statement with explicit
// values.
func checkFile(fset *token.FileSet, file *ast.File) []finding {
	var out []finding
	ast.Inspect(file, func(n ast.Node) bool {
		var typ *ast.FuncType
		var body *ast.BlockStmt
		var name string
		switch f := n.(type) {
		case *ast.FuncDecl:
			typ, body, name = f.Type, f.Body, f.Name.Name
			if f.Recv != nil && len(f.Recv.List) == 1 {
				name = recvName(f.Recv.List[0].Type) + "." + name
			}
		case *ast.FuncLit:
			typ, body, name = f.Type, f.Body, "func literal at line "+fmt.Sprint(fset.Position(f.Pos()).Line)
		default:
			return true
		}
		if body == nil {
			return true
		}
		watched := namedResults(typ)
		if len(watched) == 0 {
			return true
		}
		defers, ret := ownDefersAndReturn(body)
		if ret == nil {
			return true
		}
		for _, lit := range defers {
			seen := map[*ast.Object]bool{}
			ast.Inspect(lit.Body, func(m ast.Node) bool {
				id, ok := m.(*ast.Ident)
				if !ok || id.Obj == nil || !watched[id.Obj] || seen[id.Obj] {
					return true
				}
				seen[id.Obj] = true
				out = append(out, finding{pos: fset.Position(id.Pos()), fn: name, result: id.Name, ret: fset.Position(ret.Pos())})
				return true
			})
		}
		return true // nested literals are functions of their own
	})
	return out
}

// namedResults returns the objects of typ's named results but a final one
// of type error (the `err` the deferred cleanup is meant to read).
func namedResults(typ *ast.FuncType) map[*ast.Object]bool {
	if typ.Results == nil {
		return nil
	}
	var names []*ast.Ident
	for _, f := range typ.Results.List {
		names = append(names, f.Names...)
	}
	if len(names) == 0 {
		return nil
	}
	last := typ.Results.List[len(typ.Results.List)-1]
	if id, ok := last.Type.(*ast.Ident); ok && id.Name == "error" {
		names = names[:len(names)-1]
	}
	m := map[*ast.Object]bool{}
	for _, id := range names {
		if id.Obj != nil && id.Name != "_" {
			m[id.Obj] = true
		}
	}
	return m
}

// ownDefersAndReturn returns the function literals body defers, and its
// first return statement with explicit values, leaving out those of nested
// function literals.
func ownDefersAndReturn(body *ast.BlockStmt) (defers []*ast.FuncLit, ret *ast.ReturnStmt) {
	ast.Inspect(body, func(n ast.Node) bool {
		switch s := n.(type) {
		case *ast.FuncLit:
			return false
		case *ast.DeferStmt:
			if lit, ok := s.Call.Fun.(*ast.FuncLit); ok {
				defers = append(defers, lit)
			}
			return false
		case *ast.ReturnStmt:
			if ret == nil && len(s.Results) > 0 {
				ret = s
			}
		}
		return true
	})
	return defers, ret
}

func recvName(t ast.Expr) string {
	switch x := t.(type) {
	case *ast.StarExpr:
		return recvName(x.X)
	case *ast.IndexExpr:
		return recvName(x.X)
	case *ast.IndexListExpr:
		return recvName(x.X)
	case *ast.Ident:
		return x.Name
	}
	return "?"
}

// moduleRoot is the directory of the module's go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// moduleFiles lists the module's non-test .go files as the go command sees
// them: no testdata, vendor, hidden or _-prefixed directories, no nested
// modules.
func moduleFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path == root {
				return nil
			}
			if name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") &&
			!strings.HasPrefix(name, ".") && !strings.HasPrefix(name, "_") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func check(t *testing.T, fset *token.FileSet, path string) []finding {
	t.Helper()
	f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return checkFile(fset, f)
}

// sourceFiles returns the module's root and its non-test .go files
// (moduleFiles), failing when there are suspiciously few.
func sourceFiles(t *testing.T) (root string, files []string) {
	t.Helper()
	root = moduleRoot(t)
	files = moduleFiles(t, root)
	if len(files) < 50 {
		t.Fatalf("found only %d .go files under %s", len(files), root)
	}
	return root, files
}

func TestNoDeferredFuncReadsANamedResult(t *testing.T) {
	root, files := sourceFiles(t)
	fset := token.NewFileSet()
	for _, path := range files {
		for _, f := range check(t, fset, path) {
			rel, err := filepath.Rel(root, f.pos.Filename)
			if err == nil {
				f.pos.Filename = rel
			}
			t.Error(f)
		}
	}
}

// TestCheck_reportsTheOldServiceOpenPattern runs the check on
// testdata/deferred.go, whose `// want` comments mark the lines it must
// report, and nothing else.
func TestCheck_reportsTheOldServiceOpenPattern(t *testing.T) {
	const path = "testdata/deferred.go"
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, cg := range f.Comments {
		for _, c := range cg.List {
			if result, ok := strings.CutPrefix(c.Text, "// want "); ok {
				want = append(want, fmt.Sprintf("%d %s", fset.Position(c.Pos()).Line, result))
			}
		}
	}
	if len(want) < 3 {
		t.Fatalf("testdata has %d `// want` lines", len(want))
	}
	var got []string
	for _, fd := range checkFile(fset, f) {
		got = append(got, fmt.Sprintf("%d %s", fd.pos.Line, fd.result))
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("reported (line result) %q\nwant %q", got, want)
	}

	// The message names the place, the result and the return.
	msg := checkFile(fset, f)[0].String()
	for _, part := range []string{"testdata/deferred.go:", ": Open: ", "named result s", "deferred.go:"} {
		if !strings.Contains(msg, part) {
			t.Errorf("message %q lacks %q", msg, part)
		}
	}
}

// TestPackages_keepTheirLayering: the decision logic and the model are pure
// (no Kafka client, no storage, no I/O packages), and only internal/kafkaio
// imports the Kafka client.
func TestPackages_keepTheirLayering(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	deps := func(pkg string) []string {
		cmd := exec.Command(goTool, "list", "-deps", pkg)
		cmd.Dir = filepath.Join("..", "..")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	for _, pkg := range []string{"./handler", "./mvstate", "./editlog", "./events"} {
		for _, d := range deps(pkg) {
			for _, banned := range []string{"github.com/segmentio/kafka-go", "github.com/twmb/franz-go", "go.etcd.io/bbolt",
				"github.com/mvrepair/mvrepair/internal/store", "github.com/mvrepair/mvrepair/internal/kafkaio", "net/http", "os/exec"} {
				if d == banned || strings.HasPrefix(d, banned+"/") {
					t.Errorf("%s depends on %s: it must stay pure", pkg, d)
				}
			}
		}
	}
	cmd := exec.Command(goTool, "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, "github.com/segmentio/kafka-go") && f[0] != "github.com/mvrepair/mvrepair/internal/kafkaio" {
				t.Errorf("%s imports %s: only internal/kafkaio may", f[0], imp)
			}
		}
	}
}
