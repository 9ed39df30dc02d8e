package redisstreams

// Addresses of the redis-server processes TestMain started, for the runnable examples (example_test.go), which
// live in the external test package. In a program of yours, these are your Redis addresses.

// RedisAddrForExamples returns the address of the shared standalone redis-server.
func RedisAddrForExamples() string { return standalone.Addr() }

// ClusterAddrsForExamples returns the seed addresses of the shared Redis Cluster.
func ClusterAddrsForExamples() []string { return cluster.Addrs() }
