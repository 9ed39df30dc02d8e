package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/socketio-go/redisstreams/internal/redistest"
	"github.com/socketio-go/redisstreams/wstransport"
)

// browserWait bounds every wait on the page. A reconnection takes up to the page's reconnectionDelayMax (2 s)
// after the server is back.
const browserWait = 20 * time.Second

// chromiumPath finds Debian's chromium (scripts/test installs it). Without it the test is skipped, or fails with
// CI=true (or REQUIRE_BROWSER=1).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if redistest.Strict() || os.Getenv("REQUIRE_BROWSER") == "1" {
		t.Fatal("chromium not found on PATH (Debian: apt-get install chromium; scripts/test installs it as root)")
	}
	t.Skip("chromium not found on PATH (Debian: apt-get install chromium); skipping the browser test")
	return ""
}

// chatProcess is one run of the demo (run), restartable on the same port as a process would be.
type chatProcess struct {
	t    *testing.T
	cfg  config
	url  string
	stop func() // cancels run and waits for it to return cleanly
}

func startChat(t *testing.T, redisURL string, port int) *chatProcess {
	t.Helper()
	cfg := testConfig(t, 1)
	cfg.Ports[0] = port
	cfg.RedisURL = redisURL
	p := &chatProcess{t: t, cfg: cfg}
	var urls []string
	urls, p.stop = startRun(t, cfg)
	p.url = urls[0]
	return p
}

// restart stops the server gracefully (as on SIGTERM) and starts it again on the same port.
func (p *chatProcess) restart(t *testing.T, redisURL string) *chatProcess {
	t.Helper()
	p.stop()
	u, err := url.Parse(p.url)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return startChat(t, redisURL, port)
}

// TestBrowser drives two chat pages in headless Chromium, on two servers (each as its own process would be) that
// share a real redis-server: a message typed on one page shows on the other; after the second page's server is
// stopped and started again, the messages sent meanwhile show on that page, marked as missed, after its history.
func TestBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	rs := redistest.StartServerT(t, redistest.ServerOptions{})
	redisURL := "redis://" + rs.Addr() + "/0"
	a := startChat(t, redisURL, 0)
	b := startChat(t, redisURL, 0)

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.WindowSize(1100, 700),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.UserDataDir(t.TempDir()))
	defer cancelAlloc()
	page1, cancel1 := chromedp.NewContext(allocCtx)
	defer cancel1()

	do := func(page context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(page, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// waitJS waits until the expression is true in the page.
	waitJS := func(page context.Context, what, expr string) {
		t.Helper()
		_, err := chromedp.Run(page, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(browserWait), chromedp.WithPollingInterval(50*time.Millisecond)))
		if err != nil {
			shot(t, page, "failed")
			status, _ := chromedp.Run(page, chromedp.Evaluate[string](`document.getElementById("status").textContent + " | " + document.getElementById("messages").innerText`))
			t.Fatalf("waiting for %s: %v; page: %s", what, err, status)
		}
	}
	connected := `document.getElementById("status").textContent.startsWith("connected")`
	// message returns an expression true once a chat line with that text (and the extra condition on li) is shown.
	message := func(text, cond string) string {
		return `[...document.querySelectorAll("#messages li[data-id]")].some(li => li.textContent.includes(` +
			strconv.Quote(text) + `) && (` + cond + `))`
	}
	send := func(page context.Context, text string) {
		t.Helper()
		do(page, "type "+text, chromedp.SendKeys(chromedp.CSS("#text"), text), chromedp.Click(chromedp.CSS("#sendBtn")))
	}

	do(page1, "open page 1", chromedp.Navigate(a.url+"?name=alice&room=general"))
	page2, cancel2 := chromedp.NewContext(page1) // a second tab of the browser page 1 started
	defer cancel2()
	do(page2, "open page 2", chromedp.Navigate(b.url+"?name=bob&room=general"))
	waitJS(page1, "page 1 connected", connected)
	waitJS(page2, "page 2 connected", connected)
	waitJS(page1, "bob's join on page 1", `document.getElementById("messages").textContent.includes("bob joined #general")`)

	// A message typed on page 1 (server A) shows on page 2 (server B), through Redis.
	send(page1, "hello from page 1")
	waitJS(page2, "page 1's message on page 2", message("hello from page 1", `li.querySelector(".via.remote")`))
	// Both servers are listed on each page.
	waitJS(page2, "both servers listed", `document.querySelectorAll("#peers li").length === 2`)

	// Server B goes away (graceful stop, as on SIGTERM); page 2 notices.
	b.stop()
	waitJS(page2, "page 2 disconnected", `!document.getElementById("status").textContent.startsWith("connected")`)
	send(page1, "sent while B was down")
	waitJS(page1, "page 1's own message", message("sent while B was down", "true"))

	// B is back on the same port: page 2 reconnects by itself, recovers its session from Redis, and shows what it
	// missed, marked, after what it had.
	b = b.restart(t, redisURL)
	waitJS(page2, "page 2 reconnected", connected)
	waitJS(page2, "the missed message on page 2, marked", message("sent while B was down", `li.classList.contains("missed")`))
	waitJS(page2, "page 2 kept its history", message("hello from page 1", `!li.classList.contains("missed")`))
	waitJS(page2, "recovery announced on page 2", `document.querySelector("#messages li.recovered") !== null`)
	shot(t, page2, "recovered")

	// And it still works both ways after the restart.
	send(page2, "back from B")
	waitJS(page1, "page 2's message on page 1", message("back from B", "true"))
	shot(t, page1, "page1")

	// A message of 1 KB or more reaches page 2 compressed: Chromium offers per-message deflate, and server B's
	// websocket transport (wstransport, which page 2 upgraded to) built a compressed frame for it.
	long := strings.TrimSpace(strings.Repeat("compressible ", 76)) // the server trims
	send(page1, long)
	waitJS(page2, "the long message on page 2", message(long, "true"))
	var st struct {
		Transport wstransport.Stats `json:"transport"`
	}
	deadline := time.Now().Add(browserWait)
	for getJSON(t, b.url+"api/stats", &st); st.Transport.Connections == 0 || st.Transport.Deflated == 0; getJSON(t, b.url+"api/stats", &st) {
		if time.Now().After(deadline) {
			t.Fatalf("server B's transport: %+v, want a connection and a compressed frame", st.Transport)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A reload keeps the history (sessionStorage), missed marks included.
	do(page2, "reload page 2", chromedp.Reload())
	waitJS(page2, "page 2 connected after the reload", connected)
	waitJS(page2, "history after the reload", message("hello from page 1", `li.classList.contains("history")`)+" && "+
		message("sent while B was down", `li.classList.contains("missed")`)+" && "+message("back from B", "true"))
}

// getJSON decodes the JSON answer of a GET into out.
func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// shot saves a screenshot of the page to $CHAT_SCREENSHOT_DIR/<test>-<name>.png when that variable is set.
func shot(t *testing.T, page context.Context, name string) {
	dir := os.Getenv("CHAT_SCREENSHOT_DIR")
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(page, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, t.Name()+"-"+name+".png"), png, 0o644)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Logf("screenshot %s: %v", name, err)
	}
}
