package main

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeQuickStart fails when the README's Quick start and this program differ: the README shows main.go as
// it is, so that what a newcomer copies compiles.
func TestReadmeQuickStart(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	prog, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	block, ok := quickStart(string(readme))
	if !ok {
		t.Fatal("README.md: no ```go block under \"## Quick start\"")
	}
	if want := string(prog); block != want {
		line, got, exp := firstDiff(block, want)
		t.Errorf("README.md's Quick start differs from examples/quickstart/main.go; copy main.go into the README.\n"+
			"first difference at line %d:\nREADME:  %q\nmain.go: %q", line, got, exp)
	}
}

// quickStart returns the content of the first ```go block after the "## Quick start" heading.
func quickStart(readme string) (string, bool) {
	_, rest, ok := strings.Cut(readme, "\n## Quick start\n")
	if !ok {
		return "", false
	}
	if next := strings.Index(rest, "\n## "); next >= 0 {
		rest = rest[:next]
	}
	_, rest, ok = strings.Cut(rest, "```go\n")
	if !ok {
		return "", false
	}
	block, _, ok := strings.Cut(rest, "```\n")
	return block, ok
}

func firstDiff(a, b string) (int, string, string) {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return i + 1, x, y
		}
	}
	return 0, "", ""
}
