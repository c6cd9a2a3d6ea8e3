// Package childproc makes a program's child process die with it: on Linux
// the child runs in a process group of its own and the kernel sends it
// SIGKILL when its parent dies (Pdeathsig), so a parent killed by a
// timeout or a signal leaves no server behind holding ports and inherited
// descriptors. Elsewhere it changes nothing and KillGroup kills the child
// alone.
package childproc
