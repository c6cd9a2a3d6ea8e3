//go:build unix

package testport

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

// reserved are the locks of the ports this process picked, kept open (and
// referenced, so that no finalizer closes them) until it ends.
var reserved struct {
	sync.Mutex
	files []*os.File
}

// reserve takes port for this process among every process of every test
// run on the machine: a port is handed out released, and between the pick
// and the bind (or while a member is stopped) another test process picking
// at random from the same range must not get it. The reservation is an
// flock on a file named after the port, which the kernel drops when the
// process ends, however it ends; it is never given back before, so a
// process does not hand a port out twice either. false: someone has it.
// Without a directory for the locks, binding alone decides.
func reserve(port int) bool {
	dir := filepath.Join(os.TempDir(), "meridian-testport")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return true
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return false
	}
	reserved.Lock()
	reserved.files = append(reserved.files, f)
	reserved.Unlock()
	return true
}
