// Package panics logs the panics that servers recover (the DNS handler
// and transport, the HTTP handlers): the stack once per site that
// panicked, further panics as one line with counts at most every
// Interval, so that input that makes a handler panic cannot flood the
// log.
//
// panics imports only the standard library.
package panics
