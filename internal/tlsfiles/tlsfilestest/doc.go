// Package tlsfilestest is for tests that handle certificate files: which
// certificate a file holds now, to compare with the one a server serves.
//
// tlsfilestest imports the standard library and internal/tlsfiles.
package tlsfilestest
