package wstransport

import (
	"net/http"
	"strings"
)

// offersDeflate reports whether the upgrade request offers the permessage-deflate extension in a form that the
// engine's websocket upgrader (gorilla/websocket) accepts: it then answers with "permessage-deflate;
// server_no_context_takeover; client_no_context_takeover" whenever the server enables compression. The parsing
// follows RFC 6455 section 9.1 (extension-list of tokens with parameters), and, like the upgrader, abandons the rest
// of a header line at the first malformed extension: an extension counts only once it has parsed completely.
func offersDeflate(h http.Header) bool {
	for _, line := range h.Values("Sec-Websocket-Extensions") {
		if lineOffersDeflate(line) {
			return true
		}
	}
	return false
}

func lineOffersDeflate(s string) bool {
	for {
		var name string
		name, s = cutToken(skipWS(s))
		if name == "" {
			return false
		}
		for {
			s = skipWS(s)
			if !strings.HasPrefix(s, ";") {
				break
			}
			var param string
			param, s = cutToken(skipWS(s[1:]))
			if param == "" {
				return false
			}
			s = skipWS(s)
			if strings.HasPrefix(s, "=") {
				s = skipWS(cutValue(skipWS(s[1:])))
			}
			if s != "" && s[0] != ',' && s[0] != ';' {
				return false
			}
		}
		if s != "" && s[0] != ',' {
			return false
		}
		if name == "permessage-deflate" {
			return true
		}
		if s == "" {
			return false
		}
		s = s[1:]
	}
}

func skipWS(s string) string {
	return strings.TrimLeft(s, " \t")
}

// cutToken splits s after its leading RFC 7230 token (empty when s does not start with one).
func cutToken(s string) (token, rest string) {
	i := 0
	for i < len(s) && isTokenChar(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

// cutValue returns what follows a parameter value: a token or a quoted string. An unterminated quoted string
// takes the rest of the line.
func cutValue(s string) string {
	if !strings.HasPrefix(s, `"`) {
		_, rest := cutToken(s)
		return rest
	}
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return s[i+1:]
		}
	}
	return ""
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
