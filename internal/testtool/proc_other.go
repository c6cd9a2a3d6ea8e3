//go:build !linux

package testtool

import "os/exec"

// setProcAttr has nothing to set where there is no Pdeathsig: a child
// outlives a test binary killed by its timeout there.
func setProcAttr(*exec.Cmd) {}

// killGroup kills the process alone: it has no group of its own.
func killGroup(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
