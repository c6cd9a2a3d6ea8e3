package childproc

import (
	"os/exec"
	"syscall"
)

// DieWithParent sets cmd, before its Start, to run in a process group of
// its own and to get SIGKILL when the parent dies.
//
// Pdeathsig fires when the thread that forked the child exits, not the
// process. That is safe without runtime.LockOSThread: the Go runtime ends
// a thread only when a goroutine locked to it exits without unlocking, and
// the callers do not lock goroutines to threads; every other thread lives
// as long as the process.
func DieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// KillGroup sends SIGKILL to the process group of a started cmd set up by
// DieWithParent: its children too, which would outlive a kill of the
// leader alone. A group that is gone already is no error.
func KillGroup(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
