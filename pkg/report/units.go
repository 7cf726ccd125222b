package report

import "fmt"

// Bytes formats a byte count for people: 512 B, 70.0 KiB, 27.7 MiB, 1.25 GiB.
func Bytes[T int64 | uint64](n T) string {
	b := float64(n)
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%d B", uint64(n))
}
