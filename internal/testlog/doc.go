// Package testlog is for tests: a buffer that loggers and servers may
// write to from many goroutines while the test reads it.
//
// testlog imports only the standard library.
package testlog
