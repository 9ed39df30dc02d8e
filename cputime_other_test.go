//go:build !unix

package redisstreams

import "time"

func processCPU() time.Duration { return 0 }
