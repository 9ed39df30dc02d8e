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
	// requires at least 3. No replicas are created.
	Masters int
	// Node configures every node (extra arguments, redis.conf lines).
	Node ServerOptions
	// NodeTimeout is passed as cluster-node-timeout. Zero means 5 seconds.
	NodeTimeout time.Duration
	// Timeout bounds cluster creation and the wait for every node to report
	// a healthy, consistent cluster. Zero means 30 seconds.
	Timeout time.Duration
}

// Cluster is a Redis Cluster of redis-server processes on loopback ports,
// each a master owning a share of the hash slots.
type Cluster struct {
	nodes   []*Server
	timeout time.Duration
}

// StartCluster starts opts.Masters cluster-enabled servers, joins them with
// `redis-cli --cluster create`, and waits until every node reports
// cluster_state:ok and all nodes agree on the slot layout. The caller must
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
	if opts.NodeTimeout <= 0 {
		opts.NodeTimeout = defaultNodeTimeout
	}
	if opts.Timeout <= 0 {
		opts.Timeout = defaultClusterTimeout
	}
	c := &Cluster{timeout: opts.Timeout}
	// Nodes start one by one, so that a node's port cannot be picked as a
	// bus port of a later node, or vice versa.
	for range opts.Masters {
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
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = sysProcAttr()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("redistest: redis-cli --cluster create: %w\n%s", err, out)
	}
	return nil
}

// WaitHealthy polls every node until all report cluster_state:ok with all
// 16384 slots served, know every node, and agree on which node serves which
// slots. It is useful after restarting a node. Zero timeout means the
// cluster's configured timeout (30 seconds by default).
func (c *Cluster) WaitHealthy(timeout time.Duration) error {
	if timeout <= 0 {
		timeout = c.timeout
	}
	deadline := time.Now().Add(timeout)
	for {
		err := c.checkHealthy()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redistest: cluster not healthy after %v: %w", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *Cluster) checkHealthy() error {
	var first string
	for i, n := range c.nodes {
		view, err := nodeView(n.Addr(), len(c.nodes))
		if err != nil {
			return fmt.Errorf("node %s: %w", n.Addr(), err)
		}
		if i == 0 {
			first = view
		} else if view != first {
			return fmt.Errorf("node %s disagrees with %s on the cluster layout:\n%s\nvs\n%s",
				n.Addr(), c.nodes[0].Addr(), view, first)
		}
	}
	return nil
}

// nodeView checks one node's CLUSTER INFO and returns a canonical form of its
// CLUSTER NODES output (node id, address and slots of every node).
func nodeView(addr string, want int) (string, error) {
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
		"cluster_known_nodes":    strconv.Itoa(want),
		"cluster_size":           strconv.Itoa(want),
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
	for line := range strings.Lines(nodes) {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		// <id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot>...
		id, nodeAddr, flags, link := f[0], f[1], f[2], f[7]
		for flag := range strings.SplitSeq(flags, ",") {
			switch flag {
			case "fail", "fail?", "handshake", "noaddr":
				return "", fmt.Errorf("node %s has flags %s", id, flags)
			}
		}
		if link != "connected" {
			return "", fmt.Errorf("link to node %s is %s", id, link)
		}
		nodeAddr, _, _ = strings.Cut(nodeAddr, "@")
		slots := slices.Clone(f[8:])
		slices.Sort(slots)
		lines = append(lines, id+" "+nodeAddr+" "+strings.Join(slots, " "))
	}
	if len(lines) != want {
		return "", fmt.Errorf("CLUSTER NODES lists %d nodes, want %d", len(lines), want)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n"), nil
}
