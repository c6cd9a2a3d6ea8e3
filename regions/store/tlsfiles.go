package store

import (
	"crypto/x509"
	"errors"
	"time"

	"github.com/meridian-gslb/meridian/internal/tlsfiles"
)

// TLSProblem is one thing CheckTLSFiles found wrong with a TLS file of an
// EtcdConfig; its Field is ca_file, cert_file or key_file.
type TLSProblem = tlsfiles.Problem

// CheckTLSFiles reads the TLS files the configuration names, as the
// running user, and reports what would make the connection to etcd fail:
// a file that is missing or unreadable, a CA file without CA
// certificates (a private key given as ca_file), a certificate that is
// not one or is not for client authentication, a key that is not one or
// does not match the certificate. Expired certificates, certificates the
// CA file did not sign and keys every user can read are warnings. now is
// the time expiry is judged at.
func (c *EtcdConfig) CheckTLSFiles(now time.Time) []TLSProblem {
	var out []TLSProblem
	var roots *x509.CertPool
	if c.CAFile != "" {
		var probs []TLSProblem
		probs, roots = tlsfiles.CheckCA("ca_file", c.CAFile, now)
		out = append(out, probs...)
	}
	if c.CertFile == "" || c.KeyFile == "" {
		return out // Validate says they go together
	}
	probs, leaf, chain := tlsfiles.CheckPair(tlsfiles.Pair{CertField: "cert_file", CertFile: c.CertFile, KeyField: "key_file", KeyFile: c.KeyFile,
		Usage: x509.ExtKeyUsageClientAuth, UsageHint: "etcd refuses it: make a client certificate (deploy/certs.sh client)"}, now)
	out = append(out, probs...)
	if leaf != nil && roots != nil {
		inter := x509.NewCertPool()
		for _, ic := range chain {
			inter.AddCert(ic)
		}
		// Only the chain: expiry and key usage are reported above.
		_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		var inv x509.CertificateInvalidError
		if err != nil && !(errors.As(err, &inv) && inv.Reason == x509.Expired) {
			out = append(out, TLSProblem{Field: "cert_file", Warning: true,
				Message: c.CertFile + ": not signed by a CA in " + c.CAFile + " (" + err.Error() + "): etcd accepts it only if its --trusted-ca-file holds the CA that signed it"})
		}
	}
	return out
}
