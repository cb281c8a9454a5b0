package lint

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// maxFuncLines is the most lines a production function may span, from its
// func keyword to its closing brace, unless longFuncs names it.
const maxFuncLines = 80

// longFuncs are the production functions allowed over maxFuncLines, by
// "path/from/module/root.go Func" (methods as "Type.Method"), each with the
// reason it stays whole. An entry whose function is gone or fits again
// fails the test, so the list only shrinks with the code.
var longFuncs = map[string]string{
	"editlog/decode.go decodeFast": "a codec: one switch over the record's wire fields reads best whole " +
		"(a fuzz target checks it against the general decoder)",
	"editlog/encode.go AppendRecord": "a codec: the record's fields written in the contract's order in one pass " +
		"reads best whole (a fuzz test checks it against the generic encoding)",
}

// longFunc is a function over maxFuncLines.
type longFunc struct {
	key   string // "file.go Func" with file as given to funcLengths
	line  int
	lines int
}

// funcLengths returns the functions of file (its path as given) that span
// more than limit lines.
func funcLengths(fset *token.FileSet, path string, file *ast.File, limit int) []longFunc {
	var out []longFunc
	for _, d := range file.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		first, last := fset.Position(fd.Pos()).Line, fset.Position(fd.End()).Line
		if n := last - first + 1; n > limit {
			name := fd.Name.Name
			if fd.Recv != nil && len(fd.Recv.List) == 1 {
				name = recvName(fd.Recv.List[0].Type) + "." + name
			}
			out = append(out, longFunc{key: path + " " + name, line: first, lines: n})
		}
	}
	return out
}

// TestProductionFunctions_fitInEightyLines: a function a reader must hold
// whole in their head stays short; the few that read best whole are listed
// in longFuncs with their reason.
func TestProductionFunctions_fitInEightyLines(t *testing.T) {
	root, files := sourceFiles(t)
	fset := token.NewFileSet()
	found := map[string]longFunc{}
	for _, path := range files {
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			t.Fatal(err)
		}
		for _, lf := range funcLengths(fset, filepath.ToSlash(rel), f, maxFuncLines) {
			found[lf.key] = lf
		}
	}
	for _, key := range slices.Sorted(maps.Keys(found)) {
		if _, ok := longFuncs[key]; ok {
			continue
		}
		lf := found[key]
		file, name, _ := strings.Cut(key, " ")
		t.Errorf("%s:%d: %s is %d lines (more than %d): split it where a reader would, "+
			"or add it to longFuncs with the reason it reads best whole", file, lf.line, name, lf.lines, maxFuncLines)
	}
	for _, key := range slices.Sorted(maps.Keys(longFuncs)) {
		if _, ok := found[key]; !ok {
			t.Errorf("longFuncs lists %q, which is gone or no longer over %d lines: remove the entry", key, maxFuncLines)
		}
	}
}

// TestFuncLengths_countsFromFuncToClosingBrace checks the counter on a
// generated file: a function of exactly the limit passes, one line more is
// reported with its line and length, methods by Type.Method.
func TestFuncLengths_countsFromFuncToClosingBrace(t *testing.T) {
	body := func(lines int) string { // a function spanning lines lines
		return strings.Repeat("\t_ = 0\n", lines-2)
	}
	src := "package p\n\ntype T struct{}\n\n" +
		"func fits() {\n" + body(maxFuncLines) + "}\n\n" +
		"func tooLong() {\n" + body(maxFuncLines+1) + "}\n\n" +
		"func (t *T) method() {\n" + body(maxFuncLines+2) + "}\n"
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, lf := range funcLengths(fset, "p.go", f, maxFuncLines) {
		got = append(got, fmt.Sprintf("%s@%d=%d", lf.key, lf.line, lf.lines))
	}
	fitsEnd := 5 + maxFuncLines - 1
	tooLongAt := fitsEnd + 2
	want := []string{
		fmt.Sprintf("p.go tooLong@%d=%d", tooLongAt, maxFuncLines+1),
		fmt.Sprintf("p.go T.method@%d=%d", tooLongAt+maxFuncLines+2, maxFuncLines+2),
	}
	if !slices.Equal(got, want) {
		t.Fatalf("reported %q, want %q", got, want)
	}
}
