package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"
)

// Pair names a certificate file and its key file, each with the field of
// the configuration that names it.
type Pair struct {
	CertField, CertFile string
	KeyField, KeyFile   string
	// Usage is what the certificate is for (client or server
	// authentication); UsageHint says how to get one that is, when it is
	// not.
	Usage     x509.ExtKeyUsage
	UsageHint string
}

// CheckCA reads a CA file and reports what is wrong with it: errors when
// it cannot be used, warnings for CA certificates outside their validity
// or near its end. roots is nil when the file cannot be used.
func CheckCA(field, file string, now time.Time) (problems []Problem, roots *x509.CertPool) {
	add := func(warning bool, format string, args ...any) {
		problems = append(problems, Problem{Field: field, Message: fmt.Sprintf(format, args...), Warning: warning})
	}
	b, err := Read(file)
	if err != nil {
		add(false, "%v", err)
		return problems, nil
	}
	pool, certs, err := ParseCABundle(b)
	if err != nil {
		add(false, "%s: %v", file, err)
		return problems, nil
	}
	for i, cert := range certs {
		if msg := Validity(cert, now); msg != "" {
			add(true, "%s: certificate %d (%s) %s", file, i+1, cert.Subject, msg)
		}
	}
	return problems, pool
}

// CheckPair reads a certificate and its key and reports what is wrong:
// errors when they cannot be loaded (missing, unreadable, not what they
// should be, not matching, not for p.Usage), warnings for a certificate
// outside its validity or near its end and for a key every user can
// read. leaf and chain (the intermediates) are the certificate file's,
// nil when it cannot be read.
func CheckPair(p Pair, now time.Time) (problems []Problem, leaf *x509.Certificate, chain []*x509.Certificate) {
	add := func(field string, warning bool, format string, args ...any) {
		problems = append(problems, Problem{Field: field, Message: fmt.Sprintf(format, args...), Warning: warning})
	}
	var certPEM, keyPEM []byte
	if b, err := Read(p.CertFile); err != nil {
		add(p.CertField, false, "%v", err)
	} else if certs, err := ParseCertChain(b); err != nil {
		add(p.CertField, false, "%s: %v", p.CertFile, err)
	} else {
		certPEM, leaf, chain = b, certs[0], certs[1:]
		if msg := Validity(leaf, now); msg != "" {
			add(p.CertField, true, "%s: %s", p.CertFile, msg)
		}
		if !hasUsage(leaf, p.Usage) {
			add(p.CertField, false, "%s: its extended key usage does not allow %s; %s", p.CertFile, usageName(p.Usage), p.UsageHint)
		}
	}
	if b, err := Read(p.KeyFile); err != nil {
		add(p.KeyField, false, "%v", err)
	} else if err := ParsePrivateKey(b); err != nil {
		add(p.KeyField, false, "%s: %v", p.KeyFile, err)
	} else {
		keyPEM = b
		if open, mode := OpenToAll(p.KeyFile); open {
			add(p.KeyField, true, "%s: every user of this host can read it (mode %04o): make it 0640, group of the service's user", p.KeyFile, mode)
		}
	}
	if certPEM != nil && keyPEM != nil {
		if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
			add(p.KeyField, false, "%s does not belong to the certificate in %s: %v", p.KeyFile, p.CertFile, err)
		}
	}
	return problems, leaf, chain
}

func usageName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageClientAuth:
		return "client authentication"
	case x509.ExtKeyUsageServerAuth:
		return "server authentication"
	}
	return fmt.Sprintf("extended key usage %d", u)
}

// Errors are the problems that are not warnings.
func Errors(problems []Problem) []Problem {
	var out []Problem
	for _, p := range problems {
		if !p.Warning {
			out = append(out, p)
		}
	}
	return out
}
