package main

import (
	"testing"
	"time"

	client "github.com/zishang520/socket.io/clients/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

func TestZZProbeOpen(t *testing.T) {
	c, err := startCluster(t.Context(), testConfig(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(t.Context())
	urls := []string{c.nodes[0].url}
	stalls := 0
	for i := 0; i < 300; i++ {
		opts := client.DefaultOptions()
		opts.SetTransports(types.NewSet(client.WebSocket))
		opts.SetForceNew(true)
		opts.SetReconnection(false)
		opts.SetAutoConnect(false)
		s, err := client.Connect(urls[0], opts)
		if err != nil {
			t.Fatal(err)
		}
		opened := make(chan error, 1)
		start := time.Now()
		s.Io().Open(func(err error) { opened <- err })
		select {
		case err := <-opened:
			if err != nil {
				t.Logf("%d: err %v", i, err)
			}
		case <-time.After(3 * time.Second):
			stalls++
			t.Logf("%d: stalled; server engine clients=%d", i, c.nodes[0].io.Engine().ClientsCount())
		}
		_ = start
		s.Disconnect()
	}
	t.Logf("stalls: %d/300", stalls)
}
