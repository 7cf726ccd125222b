package report

import "testing"

func TestBytes(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {71680, "70.0 KiB"}, {29045555, "27.7 MiB"}, {1342177280, "1.25 GiB"}} {
		if got := Bytes(c.n); got != c.want {
			t.Errorf("Bytes(%d) = %q, want %q", c.n, got, c.want)
		}
	}
	if Bytes(uint64(2048)) != "2.0 KiB" {
		t.Error("uint64")
	}
}
