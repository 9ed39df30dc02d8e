package interop

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestCaptureGolden regenerates internal/wire/testdata/node-{stream,pubsub}.jsonl from the real Node package
// (node/capture.js). It only runs when asked:
//
//	INTEROP_CAPTURE=1 go test ./interop -run TestCaptureGolden -v
func TestCaptureGolden(t *testing.T) {
	if os.Getenv("INTEROP_CAPTURE") == "" {
		t.Skip("set INTEROP_CAPTURE=1 to regenerate internal/wire/testdata from Node")
	}
	requireInterop(t)
	out, err := filepath.Abs(filepath.Join("..", "internal", "wire", "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "capture.js")
	cmd.Dir = nodeDir
	cmd.Env = append(os.Environ(), "REDIS_URL=redis://"+shared.Standalone.Addr(), "OUT_DIR="+out, "PREFIX=capture-"+randomHex(4))
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = 5 * time.Second
	output, err := cmd.CombinedOutput()
	t.Logf("%s", output)
	if err != nil {
		t.Fatalf("capture.js: %v", err)
	}
}
