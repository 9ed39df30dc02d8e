package redistest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	defaultMasters        = 3
	defaultNodeTimeout    = 5 * time.Second
	defaultClusterTimeout = 30 * time.Second
	clusterSlots          = 16384
)

// ClusterOptions configures a cluster started by [StartCluster].
type ClusterOptions struct {
	// Masters is the number of master nodes; zero means 3. redis-cli
	// requires at least 3.
	Masters int
	// Replicas is the number of replicas of each master; zero means none.
	// StartCluster then also waits until every replica is in sync with its
	// master. A test that fails over a master (see [Cluster.Failover]) needs
	// at least 1.
	Replicas int
	// Node configures every node (extra arguments, redis.conf lines).
	Node ServerOptions
	// NodeTimeout is passed as cluster-node-timeout. Zero means 5 seconds.
	NodeTimeout time.Duration
	// Timeout bounds cluster creation and the wait for every node to report
	// a healthy, consistent cluster. Zero means 30 seconds.
	Timeout time.Duration
}

// Cluster is a Redis Cluster of redis-server processes on loopback ports:
// masters owning a share of the hash slots each, and their replicas, if any.
type Cluster struct {
	nodes    []*Server
	masters  int
	replicas int
	timeout  time.Duration
}

// StartCluster starts opts.Masters×(1+opts.Replicas) cluster-enabled
// servers, joins them with `redis-cli --cluster create`, and waits until
// every node reports cluster_state:ok, all nodes agree on the layout, and
// every replica is in sync. The caller must
// call [Cluster.Close]. If the binaries are missing the error wraps
// [ErrNotInstalled].
func StartCluster(opts ClusterOptions) (*Cluster, error) {
	if err := Missing(); err != nil {
		return nil, err
	}
	if opts.Masters == 0 {
		opts.Masters = defaultMasters
	}
	if opts.Masters < 3 {
		return nil, fmt.Errorf("redistest: a cluster needs at least 3 masters, got %d", opts.Masters)
	}
	if opts.Replicas < 0 {
		return nil, fmt.Errorf("redistest: negative replica count %d", opts.Replicas)
	}
	if opts.NodeTimeout <= 0 {
		opts.NodeTimeout = defaultNodeTimeout
	}
	if opts.Timeout <= 0 {
		opts.Timeout = defaultClusterTimeout
	}
	c := &Cluster{masters: opts.Masters, replicas: opts.Replicas, timeout: opts.Timeout}
	// Nodes start one by one, so that a node's port cannot be picked as a
	// bus port of a later node, or vice versa.
	for range opts.Masters * (1 + opts.Replicas) {
		s, err := startServer(opts.Node, &clusterNodeConfig{nodeTimeout: opts.NodeTimeout})
		if err != nil {
			return nil, errors.Join(err, c.Close())
		}
		c.nodes = append(c.nodes, s)
	}
	if err := c.create(opts.Timeout); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	if err := c.WaitHealthy(opts.Timeout); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	return c, nil
}

// StartClusterT is like [StartCluster] but skips or fails t (see [Require])
// when Redis is not installed, fails t on any other error, and closes the
// cluster when t finishes.
func StartClusterT(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	Require(t)
	c, err := StartCluster(opts)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("redistest: %v", err)
		}
	})
	return c
}

// Addrs returns the nodes' addresses ("127.0.0.1:port").
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Nodes returns the cluster's servers, e.g. to stop or restart one. The
// returned slice is a copy.
func (c *Cluster) Nodes() []*Server { return slices.Clone(c.nodes) }

// Close stops every node and removes their directories. It is idempotent.
func (c *Cluster) Close() error {
	var errs []error
	for _, n := range c.nodes {
		errs = append(errs, n.Close())
	}
	return errors.Join(errs...)
}

func (c *Cluster) create(timeout time.Duration) error {
	bin, err := exec.LookPath(cliBinary)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotInstalled, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(c.replicas), "--cluster-yes")
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = sysProcAttr()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("redistest: redis-cli --cluster create: %w\n%s", err, out)
	}
	return nil
}

// WaitHealthy polls every node until all report cluster_state:ok with all
// 16384 slots served, know every node, agree on the layout (which node
// serves which slots, which node replicates which), every master serving
// slots has its replicas, and every replica is in sync with its master. It
// is useful after restarting a node. Zero timeout means the cluster's
// configured timeout (30 seconds by default).
func (c *Cluster) WaitHealthy(timeout time.Duration) error {
	return c.WaitHealthyWithout(timeout)
}

// WaitHealthyWithout is [Cluster.WaitHealthy] while the nodes down are
// stopped, paused or failed: they are neither asked nor expected to be
// healthy, the others may flag them as failed, and a master that lost its
// replica to them need not have one. It is the wait for the end of a
// failover, once the replica of a master down has taken over its slots.
func (c *Cluster) WaitHealthyWithout(timeout time.Duration, down ...*Server) error {
	return c.poll(timeout, "cluster not healthy", func() error { return c.checkHealthy(down) })
}

// poll calls check every 50 ms until it returns nil, or until timeout (zero: the cluster's configured timeout) has
// passed: then it returns check's last error, saying what was not reached.
func (c *Cluster) poll(timeout time.Duration, what string, check func() error) error {
	if timeout <= 0 {
		timeout = c.timeout
	}
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redistest: %s after %v: %w", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) checkHealthy(down []*Server) error {
	skip := map[string]bool{}
	for _, n := range down {
		skip[n.Addr()] = true
	}
	var first, firstAddr string
	for _, n := range c.nodes {
		if skip[n.Addr()] {
			continue
		}
		view, err := c.nodeView(n.Addr(), skip)
		if err != nil {
			return fmt.Errorf("node %s: %w", n.Addr(), err)
		}
		if first == "" {
			first, firstAddr = view, n.Addr()
		} else if view != first {
			return fmt.Errorf("node %s disagrees with %s on the cluster layout:\n%s\nvs\n%s",
				n.Addr(), firstAddr, view, first)
		}
	}
	return nil
}

// nodeView checks one node's CLUSTER INFO and, on a replica, INFO
// replication, and returns a canonical form of its CLUSTER NODES output
// (node id, address, role, master and slots of every node not down).
func (c *Cluster) nodeView(addr string, down map[string]bool) (string, error) {
	conn, err := dialRESP(addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	info, err := conn.doString("CLUSTER", "INFO")
	if err != nil {
		return "", err
	}
	for field, expect := range map[string]string{
		"cluster_state":          "ok",
		"cluster_slots_assigned": strconv.Itoa(clusterSlots),
		"cluster_slots_ok":       strconv.Itoa(clusterSlots),
		"cluster_known_nodes":    strconv.Itoa(len(c.nodes)),
		"cluster_size":           strconv.Itoa(c.masters),
	} {
		if got, _ := infoField(info, field); got != expect {
			return "", fmt.Errorf("%s is %q, want %q", field, got, expect)
		}
	}
	nodes, err := conn.doString("CLUSTER", "NODES")
	if err != nil {
		return "", err
	}
	var lines []string
	replicas := map[string]int{} // by master id
	var masters []string         // ids of the masters serving slots
	myRole := ""
	for line := range strings.Lines(nodes) {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		// <id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot>...
		id, nodeAddr, flags, master, link := f[0], f[1], f[2], f[3], f[7]
		nodeAddr, _, _ = strings.Cut(nodeAddr, "@")
		if down[nodeAddr] {
			continue
		}
		role := ""
		for flag := range strings.SplitSeq(flags, ",") {
			switch flag {
			case "fail", "fail?", "handshake", "noaddr":
				return "", fmt.Errorf("node %s has flags %s", id, flags)
			case "master", "slave":
				role = flag
			}
		}
		if link != "connected" {
			return "", fmt.Errorf("link to node %s is %s", id, link)
		}
		if strings.Contains(flags, "myself") {
			myRole = role
		}
		slots := slices.Clone(f[8:])
		slices.Sort(slots)
		switch {
		case role == "slave":
			replicas[master]++
		case len(slots) > 0:
			masters = append(masters, id)
		}
		lines = append(lines, id+" "+nodeAddr+" "+role+" "+master+" "+strings.Join(slots, " "))
	}
	if want := len(c.nodes) - len(down); len(lines) != want {
		return "", fmt.Errorf("CLUSTER NODES lists %d nodes up, want %d", len(lines), want)
	}
	if len(down) == 0 {
		for _, m := range masters {
			if replicas[m] != c.replicas {
				return "", fmt.Errorf("master %s has %d replicas, want %d", m, replicas[m], c.replicas)
			}
		}
	}
	if myRole == "slave" {
		repl, err := conn.doString("INFO", "replication")
		if err != nil {
			return "", err
		}
		for field, expect := range map[string]string{"master_link_status": "up", "master_sync_in_progress": "0"} {
			if got, _ := infoField(repl, field); got != expect {
				return "", fmt.Errorf("replica: %s is %q, want %q", field, got, expect)
			}
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n"), nil
}

// Shard is one master and its replicas, as a node of the cluster sees them.
type Shard struct {
	Master   *Server
	Replicas []*Server
}

// ShardOf returns the master that serves key's hash slot and its replicas
// (those not flagged as failed), as the first node
// up that answers sees them.
func (c *Cluster) ShardOf(key string) (Shard, error) {
	var lastErr error
	for _, n := range c.nodes {
		if n.Pid() == 0 {
			continue
		}
		sh, err := c.shardOf(n.Addr(), key)
		if err == nil {
			return sh, nil
		}
		lastErr = err
	}
	if lastErr == nil {
		lastErr = errors.New("no node up")
	}
	return Shard{}, fmt.Errorf("redistest: shard of %q: %w", key, lastErr)
}

func (c *Cluster) shardOf(addr, key string) (Shard, error) {
	conn, err := dialRESP(addr, 2*time.Second)
	if err != nil {
		return Shard{}, err
	}
	defer conn.Close()
	v, err := conn.do("CLUSTER", "KEYSLOT", key)
	if err != nil {
		return Shard{}, err
	}
	slot, ok := v.(int64)
	if !ok {
		return Shard{}, fmt.Errorf("CLUSTER KEYSLOT: unexpected reply %T", v)
	}
	// CLUSTER NODES, not CLUSTER SLOTS: the latter leaves out the replicas
	// that have not replicated a byte yet (offset 0).
	nodes, err := conn.doString("CLUSTER", "NODES")
	if err != nil {
		return Shard{}, err
	}
	type nodeLine struct {
		id, master string
		port       int
		failed     bool
		slots      []string
	}
	var all []nodeLine
	for line := range strings.Lines(nodes) {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		hostPort, _, _ := strings.Cut(f[1], "@")
		_, p, _ := strings.Cut(hostPort, ":")
		port, _ := strconv.Atoi(p)
		failed := strings.Contains(f[2], "fail")
		all = append(all, nodeLine{id: f[0], master: f[3], port: port, failed: failed, slots: f[8:]})
	}
	var sh Shard
	masterID := ""
	for _, n := range all {
		for _, r := range n.slots {
			lo, hi, isRange := strings.Cut(r, "-")
			if strings.HasPrefix(r, "[") {
				continue // a slot being imported or migrated
			}
			if !isRange {
				hi = lo
			}
			l, err1 := strconv.ParseInt(lo, 10, 64)
			h, err2 := strconv.ParseInt(hi, 10, 64)
			if err1 == nil && err2 == nil && l <= slot && slot <= h {
				masterID = n.id
				if sh.Master = c.nodeOnPort(n.port); sh.Master == nil {
					return Shard{}, fmt.Errorf("no node of this cluster on port %d", n.port)
				}
			}
		}
	}
	if masterID == "" {
		return Shard{}, fmt.Errorf("no node serves slot %d", slot)
	}
	for _, n := range all {
		if n.master == masterID && !n.failed {
			if s := c.nodeOnPort(n.port); s != nil {
				sh.Replicas = append(sh.Replicas, s)
			}
		}
	}
	return sh, nil
}

func (c *Cluster) nodeOnPort(port int) *Server {
	for _, n := range c.nodes {
		if n.Port() == port {
			return n
		}
	}
	return nil
}

// Failover runs CLUSTER FAILOVER on replica (a graceful, coordinated
// failover: the master stops writes, the replica catches up and takes over
// its slots) and waits until the cluster is healthy with replica serving the
// slots (the old master becomes its replica). Zero timeout means the
// cluster's configured timeout.
func (c *Cluster) Failover(replica *Server, timeout time.Duration) error {
	conn, err := dialRESP(replica.Addr(), 2*time.Second)
	if err != nil {
		return fmt.Errorf("redistest: failover: %w", err)
	}
	_, err = conn.doString("CLUSTER", "FAILOVER")
	_ = conn.Close()
	if err != nil {
		return fmt.Errorf("redistest: CLUSTER FAILOVER on %s: %w", replica.Addr(), err)
	}
	return c.WaitPromoted(replica, timeout)
}

// WaitPromoted waits until replica is a master serving slots and the cluster
// is healthy without the nodes down (see [Cluster.WaitHealthyWithout]), e.g.
// after its master was killed or paused. Zero timeout means the cluster's
// configured timeout.
func (c *Cluster) WaitPromoted(replica *Server, timeout time.Duration, down ...*Server) error {
	return c.poll(timeout, replica.Addr()+" not promoted", func() error {
		if err := c.isMaster(replica); err != nil {
			return err
		}
		return c.checkHealthy(down)
	})
}

func (c *Cluster) isMaster(s *Server) error {
	conn, err := dialRESP(s.Addr(), 2*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	v, err := conn.do("ROLE")
	if err != nil {
		return err
	}
	if f, _ := v.([]any); len(f) == 0 || f[0] != "master" {
		return fmt.Errorf("ROLE is %v", v)
	}
	return nil
}
