package rdb

import (
	"slices"
	"sync"
)

// Confirmations lets a Subscribe wait until Redis has confirmed each of its channels, whichever goroutine reads
// the confirmation.
type Confirmations struct {
	mu      sync.Mutex
	waiting map[string][]chan struct{}
}

// expect registers a wait for channel; register it before sending the SUBSCRIBE.
func (c *Confirmations) Expect(channel string) chan struct{} {
	w := make(chan struct{})
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.waiting == nil {
		c.waiting = map[string][]chan struct{}{}
	}
	c.waiting[channel] = append(c.waiting[channel], w)
	return w
}

// confirm releases every wait for channel.
func (c *Confirmations) Confirm(channel string) {
	c.mu.Lock()
	ws := c.waiting[channel]
	delete(c.waiting, channel)
	c.mu.Unlock()
	for _, w := range ws {
		close(w)
	}
}

// forget drops the given waits of a failed Subscribe; other callers' waits for the same channels stay.
func (c *Confirmations) Forget(channels []string, waits []chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range channels {
		c.waiting[ch] = slices.DeleteFunc(c.waiting[ch], func(w chan struct{}) bool { return slices.Contains(waits, w) })
		if len(c.waiting[ch]) == 0 {
			delete(c.waiting, ch)
		}
	}
}
