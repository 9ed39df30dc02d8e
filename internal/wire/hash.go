package wire

import (
	"strconv"
	"unicode/utf16"
)

// HashCode reproduces the Node adapter's namespace hash: a Java-style 31-multiplier hash over the UTF-16 code
// units of s, wrapping as a signed 32-bit integer at every step.
func HashCode(s string) int32 {
	var h int32
	for _, r := range s {
		if r >= 0x10000 {
			hi, lo := utf16.EncodeRune(r)
			h = h*31 + int32(hi)
			h = h*31 + int32(lo)
			continue
		}
		h = h*31 + int32(r)
	}
	return h
}

// StreamName returns the stream a namespace is written to, exactly as the Node adapter 0.3.1 computes it,
// including its negative indexes ("socket.io--2") for namespaces whose hash is negative.
func StreamName(base string, count int, nsp string) string {
	if count == 1 {
		return base
	}
	idx := HashCode(nsp) % int32(count)
	return base + "-" + strconv.Itoa(int(idx))
}
