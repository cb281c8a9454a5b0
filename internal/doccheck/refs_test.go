package doccheck

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestRepository_citesItsOwnDesignNeverAFileOutsideIt: the repository stands
// alone. Code and docs cite docs/design.md, never the product spec (an
// upper-case DESIGN.md) or another file outside the clone (a relative path
// that climbs to a place the clone does not hold), and every "docs/design.md §n"
// names a section that exists.
func TestRepository_citesItsOwnDesignNeverAFileOutsideIt(t *testing.T) {
	root := filepath.Join("..", "..")
	design, err := os.ReadFile(filepath.Join(root, "docs", "design.md"))
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#+ §([0-9.]+) `).FindAllStringSubmatch(string(design), -1) {
		sections[m[1]] = true
	}
	cite := regexp.MustCompile(`design\.md\s+§([0-9]+(?:\.[0-9]+)*)`)
	spec := regexp.MustCompile(`[^/a-z]DESIGN\.md`)
	climb := regexp.MustCompile(`(?:\.\./)+[A-Za-z0-9_][A-Za-z0-9_.-]*`)
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".go", ".md", ".yml", ".yaml", ".sh", ".json":
		default:
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		text := string(b)
		line := func(at int) int { return 1 + strings.Count(text[:at], "\n") }
		if rel != filepath.Join("docs", "design.md") && rel != filepath.Join("internal", "doccheck", "refs_test.go") {
			if loc := spec.FindStringIndex(text); loc != nil {
				t.Errorf("%s:%d cites the product spec instead of docs/design.md: %q", rel, line(loc[0]), text[loc[0]:min(len(text), loc[1]+20)])
			}
		}
		for _, loc := range climb.FindAllStringIndex(text, -1) {
			// Climbing is fine to a place inside the clone that exists.
			abs := filepath.Join(filepath.Dir(path), text[loc[0]:loc[1]])
			target, err := filepath.Rel(root, abs)
			_, missing := os.Stat(abs)
			if err != nil || strings.HasPrefix(target, "..") || missing != nil {
				t.Errorf("%s:%d cites a file outside the repository: %q", rel, line(loc[0]), text[loc[0]:loc[1]])
			}
		}
		for _, m := range cite.FindAllStringSubmatchIndex(text, -1) {
			sec := text[m[2]:m[3]]
			if !sections[sec] && !sections[strings.SplitN(sec, ".", 2)[0]] {
				t.Errorf("%s:%d cites docs/design.md §%s, which has no such section", rel, line(m[0]), sec)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
