//go:build !linux

package childproc

import "os/exec"

// DieWithParent changes nothing where there is no Pdeathsig: the child
// outlives a parent that is killed.
func DieWithParent(*exec.Cmd) {}

// KillGroup kills the started cmd alone: it has no group of its own.
func KillGroup(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
