package wire

import (
	"testing"
	"time"
)

func TestParseStreamID(t *testing.T) {
	for _, tc := range []struct {
		in string
		id StreamID
		ok bool
	}{
		{"1700000000000-0", StreamID{1700000000000, 0}, true},
		{"0-0", StreamID{}, true},
		{"18446744073709551615-18446744073709551615", StreamID{1<<64 - 1, 1<<64 - 1}, true},
		{"18446744073709551616-0", StreamID{}, false}, // overflows
		{"", StreamID{}, false},
		{"12", StreamID{}, false}, // no sequence
		{"12-", StreamID{}, false},
		{"-3", StreamID{}, false},
		{"+", StreamID{}, false},
		{"(12-3", StreamID{}, false},
		{"12-3x", StreamID{}, false},
		{" 12-3", StreamID{}, false},
		{"12-3-4", StreamID{}, false},
		{"1e3-0", StreamID{}, false},
	} {
		id, ok := ParseStreamID(tc.in)
		if ok != tc.ok || (ok && id != tc.id) {
			t.Errorf("ParseStreamID(%q) = %v, %v; want %v, %v", tc.in, id, ok, tc.id, tc.ok)
		}
		if IsStreamID(tc.in) != tc.ok {
			t.Errorf("IsStreamID(%q) = %v", tc.in, !tc.ok)
		}
		if ok && id.String() != tc.in {
			t.Errorf("%q round trips as %q", tc.in, id.String())
		}
	}
}

func TestCompareIDs(t *testing.T) {
	ordered := []string{"0-0", "0-1", "1-0", "9-5", "10-0", "10-2", "10-10", "100-0"}
	for i, a := range ordered {
		for j, b := range ordered {
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			if got := CompareIDs(a, b); got != want {
				t.Errorf("CompareIDs(%q, %q) = %d, want %d", a, b, got, want)
			}
		}
	}
	// Text that is no entry ID orders as "0-0".
	if CompareIDs("", "0-0") != 0 || CompareIDs("junk", "0-1") != -1 {
		t.Error("an ID that does not parse must order as 0-0")
	}
}

func TestIDMillis(t *testing.T) {
	if ms, ok := IDMillis("1700000000123-7"); !ok || ms != 1700000000123 {
		t.Errorf("IDMillis = %d, %v", ms, ok)
	}
	for _, s := range []string{"", "0-0", "0-5", "x-1"} {
		if _, ok := IDMillis(s); ok {
			t.Errorf("IDMillis(%q) ok", s)
		}
	}
	if got := (StreamID{Ms: 1700000000123}).Time(); !got.Equal(time.UnixMilli(1700000000123)) {
		t.Errorf("Time = %v", got)
	}
}
