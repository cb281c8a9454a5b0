package testkit

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// Damage kinds of DamageStore: what an operator (or a disk) does to a
// stopped store's files.
const (
	DamageFlip      = "flipped bytes" // 16 bytes in the middle of the largest file inverted
	DamageValue     = "changed value" // one digit of a value in the largest file changed
	DamageTruncated = "truncated"     // the newest snapshot (else the largest file) cut to 8 KiB
)

// DamageStore damages a stopped service's store in stateDir as kind says
// and returns the file it damaged.
func DamageStore(t testing.TB, stateDir, kind string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(stateDir, "store", "*"))
	type sized struct {
		path string
		size int64
	}
	var data []sized
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 && filepath.Base(f) != "COMPLETE" {
			data = append(data, sized{f, fi.Size()})
		}
	}
	if len(data) == 0 {
		t.Fatalf("no store files in %s", stateDir)
	}
	slices.SortFunc(data, func(a, b sized) int { return int(b.size - a.size) })
	target := data[0].path
	b, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	switch kind {
	case DamageFlip:
		for i := len(b) / 2; i < min(len(b)/2+16, len(b)); i++ {
			b[i] ^= 0xff
		}
	case DamageValue:
		changed := false
		for i := len(b) / 2; i < len(b) && !changed; i++ {
			if b[i] >= '1' && b[i] <= '8' && i > 0 && b[i-1] >= '0' && b[i-1] <= '9' {
				b[i]++ // a version or time one (or ten, hundred...) higher: still valid JSON
				changed = true
			}
		}
		if !changed {
			t.Fatalf("no digit to change in the second half of %s", target)
		}
	case DamageTruncated:
		snaps, _ := filepath.Glob(filepath.Join(stateDir, "store", "snap-*.snap"))
		if len(snaps) > 0 {
			slices.Sort(snaps)
			target = snaps[len(snaps)-1]
			if b, err = os.ReadFile(target); err != nil {
				t.Fatal(err)
			}
		}
		b = b[:min(len(b), 8<<10)]
	default:
		t.Fatalf("unknown damage %q", kind)
	}
	if err := os.WriteFile(target, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return target
}
