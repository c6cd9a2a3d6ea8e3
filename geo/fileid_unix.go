//go:build unix

package geo

import (
	"os"
	"syscall"
)

// fileID returns the device and inode of a file, which change when the file
// is replaced by rename even if its size and mtime do not.
func fileID(fi os.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), st.Ino
	}
	return 0, 0
}
