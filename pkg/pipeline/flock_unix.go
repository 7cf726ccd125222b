//go:build unix

package pipeline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockRunDir takes an exclusive advisory lock on a run directory, so that
// two processes never write the same run (two `lora resume` of one run).
// The lock goes away with the process, also when it is killed.
func lockRunDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock run %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("run %s is in use by another lora process; wait for it to finish", dir)
		}
		return nil, fmt.Errorf("lock run %s: %w", dir, err)
	}
	return func() { f.Close() }, nil
}
