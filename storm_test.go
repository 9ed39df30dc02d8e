package redisstreams

import "testing"

// 40 clients drop at once while another server broadcasts numbered events without pause, and all come back at
// once, half on the broadcasting server and half on a third one: each gets every number exactly once. Without the
// replay floors (session.go, replayed), an entry routed before a restore began but delivered after its socket was
// connected reached that socket twice (about one run in ten, on both servers).
func TestRecoveryStormUnderTraffic(t *testing.T) {
	nodes := recoveryCluster(t, configs[0], clusterOpts{})
	a, b, c := nodes[0], nodes[1], nodes[2]
	var olds []*csrClient
	for range 40 {
		olds = append(olds, dialCSRT(t, a.url, nil, ""))
	}
	resumeUnderTraffic(t, b, olds, func() {
		for _, x := range olds {
			x.cut()
		}
		// The sessions are stored once a has noticed.
		waitFor(t, "a to notice", func() bool { return a.io.Of("/", nil).Sockets().Len() == 0 })
	}, b, c)
}

// The race TestRecoveryStormUnderTraffic hits by chance, made certain: a broadcast is routed before a restore
// begins (no restore to hold it for), its stream entry is in the restore's replay, and its local delivery is late:
// it runs once the restored socket is connected. The socket gets it once, from the replay.
func TestRecoveryLateDelivery(t *testing.T) {
	n := recoveryCluster(t, configs[0], clusterOpts{nodes: 1})[0]
	x := dialCSRT(t, n.url, nil, "")
	n.io.Emit("seq", 0)
	x.waitNumbers(t, "seq", 1)
	x.cut()
	waitFor(t, "the drop to be noticed", func() bool { return n.io.Of("/", nil).Sockets().Len() == 0 })

	entered, release := make(chan string, 1), make(chan struct{})
	hold := func(offset string) {
		if offset != "" {
			entered <- offset
			<-release
		}
	}
	n.adapter.beforeDeliver.Store(&hold)
	emitted := make(chan struct{})
	go func() {
		defer close(emitted)
		n.io.Emit("seq", 1) // written to the stream, then held before its local delivery
	}()
	offset := <-entered
	n.adapter.beforeDeliver.Store(nil)
	x2 := resumeCSR(t, n.url, x) // its replay has entry 1
	if got := x2.waitNumbers(t, "seq", 1); got[0] != 1 {
		t.Fatalf("replay %v", got)
	}
	close(release) // the late delivery of entry 1
	<-emitted
	n.io.Emit("seq", 2)
	if got := x2.waitNumbers(t, "seq", 2); len(got) != 2 || got[1] != 2 {
		t.Fatalf("after the replay of %s: %v, want [1 2]", offset, got)
	}
}
