package knockcmd

import (
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	now := time.Unix(1767225600, 0)
	for _, tc := range []struct {
		in   string
		want int64
	}{{"1767225600", 1767225600}, {"+30", 1767225630}, {"-90", 1767225510}, {"0", 0}} {
		got, err := ParseTime(tc.in, now)
		if err != nil || got.Unix() != tc.want {
			t.Errorf("ParseTime(%q) = %v, %v; want %d", tc.in, got.Unix(), err, tc.want)
		}
	}
	for _, bad := range []string{"", "soon", "1.5", "+"} {
		if _, err := ParseTime(bad, now); err == nil {
			t.Errorf("ParseTime(%q) succeeded", bad)
		}
	}
}
