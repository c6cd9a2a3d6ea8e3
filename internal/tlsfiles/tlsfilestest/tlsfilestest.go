package tlsfilestest

import (
	"testing"

	"github.com/meridian-gslb/meridian/internal/tlsfiles"
)

// Serial is the serial number of the first certificate in certFile; the
// test fails when the file holds none.
func Serial(tb testing.TB, certFile string) string {
	tb.Helper()
	certs, err := tlsfiles.ReadCertificates(certFile)
	if err != nil {
		tb.Fatal(err)
	}
	return certs[0].SerialNumber.String()
}
