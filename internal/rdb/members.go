package rdb

import (
	"context"
	"strconv"
	"time"

	"github.com/socketio-go/redisstreams/internal/wire"
)

// Members returns, per namespace, the servers (uids) that wrote to a stream since a time, as the streams-only
// layout counts them: any entry counts, except the emitters' (uid "emitter"), and a server whose last entry is
// ADAPTER_CLOSE has left. At most maxEntries entries are read, oldest first; truncated reports that there were
// more (the newest are then not looked at).
func Members(ctx context.Context, c Client, stream string, since time.Time, maxEntries int) (members map[string]map[string]bool, truncated bool, err error) {
	const page = 1000
	closeType := strconv.Itoa(int(wire.AdapterClose))
	members = map[string]map[string]bool{}
	start := wire.StreamID{Ms: uint64(max(since.UnixMilli(), 0))}.String()
	for read := 0; ; {
		if read >= maxEntries {
			return members, true, nil
		}
		n := min(page, maxEntries-read)
		entries, err := c.XRange(ctx, stream, start, "+", int64(n))
		if err != nil {
			return nil, false, err
		}
		for _, e := range entries {
			uid, nsp := e.Fields["uid"], e.Fields["nsp"]
			if uid == "" || nsp == "" || uid == wire.EmitterUID {
				continue
			}
			if members[nsp] == nil {
				members[nsp] = map[string]bool{}
			}
			members[nsp][uid] = e.Fields["type"] != closeType
		}
		read += len(entries)
		if len(entries) < n {
			break
		}
		start = "(" + entries[len(entries)-1].ID
	}
	for nsp, uids := range members {
		for uid, alive := range uids {
			if !alive {
				delete(uids, uid)
			}
		}
		if len(uids) == 0 {
			delete(members, nsp)
		}
	}
	return members, false, nil
}
