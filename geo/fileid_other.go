//go:build !unix

package geo

import "os"

// fileID is not available here; mtime and size still detect changes.
func fileID(os.FileInfo) (dev, ino uint64) { return 0, 0 }
