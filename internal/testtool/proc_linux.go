package testtool

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts cmd in a group of its own and has the kernel SIGKILL it
// when the test binary dies.
//
// Pdeathsig fires when the thread that forked the child exits, not the
// process. That is safe here without runtime.LockOSThread: the Go runtime
// ends a thread only when a goroutine locked to it exits without
// unlocking, and tests do not lock their goroutines to threads; every
// other thread lives as long as the process.
func setProcAttr(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// killGroup kills the process group cmd leads (ESRCH once it is gone).
func killGroup(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
