package wstransport

import (
	"net"
	"sync"
	"syscall"
	"unsafe"
)

// rawConnOf returns the connection's raw file descriptor access when its writes can be tried without waiting:
// a TCP or Unix socket, whose descriptor the runtime keeps non-blocking. Other connections (TLS) get nil.
func rawConnOf(nc net.Conn) syscall.RawConn {
	switch c := nc.(type) {
	case *net.TCPConn:
		if rc, err := c.SyscallConn(); err == nil {
			return rc
		}
	case *net.UnixConn:
		if rc, err := c.SyscallConn(); err == nil {
			return rc
		}
	}
	return nil
}

// maxIovecs is the most buffers one writev takes from a batch (IOV_MAX is 1024).
const maxIovecs = 64

// writev is the scratch space of one non-blocking writev: iovecs and the result, with the callback that
// syscall.RawConn.Write runs on the descriptor, bound once so that a write allocates nothing.
type writev struct {
	iov   [maxIovecs]syscall.Iovec
	count int
	n     int
	errno syscall.Errno
	call  func(fd uintptr) bool
}

var writevs = sync.Pool{New: func() any {
	w := &writev{}
	w.call = w.run
	return w
}}

// run calls writev once (again after EINTR) and reports done either way: the descriptor is non-blocking, so
// EAGAIN comes back at once instead of waiting for the poller.
func (w *writev) run(fd uintptr) bool {
	for {
		r, _, errno := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&w.iov[0])), uintptr(w.count))
		if errno == syscall.EINTR {
			continue
		}
		w.n, w.errno = int(r), errno
		return true
	}
}

// tryWrite writes as much of the batch as the socket takes now, without waiting, in writev calls of up to
// maxIovecs frames. It returns the bytes written, and blocked when the socket's send buffer is full. Frames are
// never empty.
func tryWrite(rc syscall.RawConn, batch []item) (written int, blocked bool, err error) {
	w := writevs.Get().(*writev)
	defer writevs.Put(w)
	for len(batch) > 0 {
		w.count = min(len(batch), maxIovecs)
		want := 0
		for i, it := range batch[:w.count] {
			w.iov[i].Base = &it.b[0]
			w.iov[i].SetLen(len(it.b))
			want += len(it.b)
		}
		err = rc.Write(w.call)
		clear(w.iov[:w.count]) // do not keep the frames alive from the pool
		switch {
		case err != nil:
			return written, false, err
		case w.errno == syscall.EAGAIN:
			return written, true, nil
		case w.errno != 0:
			return written, false, w.errno
		}
		written += w.n
		if w.n < want {
			return written, true, nil // the send buffer filled up during this call
		}
		batch = batch[w.count:]
	}
	return written, false, nil
}
