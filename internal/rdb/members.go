package rdb

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/socketio-go/redisstreams/internal/wire"
)

// Members returns, per namespace, the servers (uids) that wrote to a stream since a time, as the streams-only
// layout counts them: any entry counts, except the emitters' (uid "emitter"), and a server whose last entry is
// ADAPTER_CLOSE has left. The stream is read newest first, at most maxEntries entries: when there are more since
// then, oldest is the time of the oldest entry read (zero otherwise), and only servers that wrote after it are
// counted. A server that writes at least every heartbeat interval is counted as long as oldest is more than one
// interval ago.
func Members(ctx context.Context, c Client, stream string, since time.Time, maxEntries int) (members map[string]map[string]bool, oldest time.Time, err error) {
	const page = 1000
	closeType := strconv.Itoa(int(wire.AdapterClose))
	members = map[string]map[string]bool{}
	start := wire.StreamID{Ms: uint64(max(since.UnixMilli(), 0))}.String()
	end := "+"
	for read := 0; ; {
		if read >= maxEntries {
			if id, ok := wire.ParseStreamID(strings.TrimPrefix(end, "(")); ok {
				oldest = id.Time()
			}
			break
		}
		n := min(page, maxEntries-read)
		entries, err := c.XRevRange(ctx, stream, end, start, int64(n))
		if err != nil {
			return nil, time.Time{}, err
		}
		for _, e := range entries {
			uid, nsp := e.Fields["uid"], e.Fields["nsp"]
			if uid == "" || nsp == "" || uid == wire.EmitterUID {
				continue
			}
			if members[nsp] == nil {
				members[nsp] = map[string]bool{}
			}
			if _, seen := members[nsp][uid]; !seen { // newest first: its last entry tells
				members[nsp][uid] = e.Fields["type"] != closeType
			}
		}
		read += len(entries)
		if len(entries) < n {
			break
		}
		end = "(" + entries[len(entries)-1].ID
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
	return members, oldest, nil
}
