package redisstreams

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// Each Redis client family lives in its own package, so a program links only the client it uses (issue 19 item
// 2): two small programs, one per family, each using the adapter and the emitter, and what `go list -deps` says
// each links. The adapter and the emitter alone link neither.
func TestEachClientFamilyLinksAlone(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool")
	}
	const goRedis, rueidisLib = "github.com/redis/go-redis/v9", "github.com/redis/rueidis"
	for _, tc := range []struct {
		pkg           string
		want, notWant []string
	}{
		{"./testdata/link/goredis", []string{goRedis}, []string{rueidisLib}},
		{"./testdata/link/rueidis", []string{rueidisLib}, []string{goRedis}},
		{".", nil, []string{goRedis, rueidisLib}},
		{"./emitter", nil, []string{goRedis, rueidisLib}},
	} {
		out, err := exec.Command(goTool, "list", "-deps", tc.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", tc.pkg, err, out)
		}
		deps := strings.Fields(string(out))
		links := func(module string) bool {
			return slices.ContainsFunc(deps, func(p string) bool { return p == module || strings.HasPrefix(p, module+"/") })
		}
		for _, m := range tc.want {
			if !links(m) {
				t.Errorf("%s does not link %s", tc.pkg, m)
			}
		}
		for _, m := range tc.notWant {
			if links(m) {
				t.Errorf("%s links %s", tc.pkg, m)
			}
		}
		t.Logf("%s: %d packages; go-redis %v, rueidis %v", tc.pkg, len(deps), links(goRedis), links(rueidisLib))
	}
}
