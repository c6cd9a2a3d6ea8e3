package store

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"
)

// TLSProblem is one thing CheckTLSFiles found wrong with a TLS file of an
// EtcdConfig.
type TLSProblem struct {
	Field   string // ca_file, cert_file or key_file
	Message string
	// Warning: the client would still connect (an expiry, a key others
	// can read, a certificate another CA may accept); otherwise Connect
	// fails or etcd refuses every handshake.
	Warning bool
}

// expirySoon is how far ahead CheckTLSFiles warns of a certificate's end.
const expirySoon = 30 * 24 * time.Hour

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
	add := func(field string, warning bool, format string, args ...any) {
		out = append(out, TLSProblem{Field: field, Message: fmt.Sprintf(format, args...), Warning: warning})
	}
	var roots *x509.CertPool
	if c.CAFile != "" {
		if pem, err := readTLSFile(c.CAFile); err != nil {
			add("ca_file", false, "%v", err)
		} else if pool, certs, err := parseCABundle(pem); err != nil {
			add("ca_file", false, "%s: %v", c.CAFile, err)
		} else {
			roots = pool
			for i, cert := range certs {
				if msg := validity(cert, now); msg != "" {
					add("ca_file", true, "%s: certificate %d (%s) %s", c.CAFile, i+1, cert.Subject, msg)
				}
			}
		}
	}
	var certPEM, keyPEM []byte
	var leaf *x509.Certificate
	var chain []*x509.Certificate
	if c.CertFile != "" {
		b, err := readTLSFile(c.CertFile)
		if err != nil {
			add("cert_file", false, "%v", err)
		} else if certs, err := parseCertChain(b); err != nil {
			add("cert_file", false, "%s: %v", c.CertFile, err)
		} else {
			certPEM, leaf, chain = b, certs[0], certs[1:]
			if msg := validity(leaf, now); msg != "" {
				add("cert_file", true, "%s: %s", c.CertFile, msg)
			}
			if !forClientAuth(leaf) {
				add("cert_file", false, "%s: its extended key usage does not allow client authentication, so etcd refuses it; make a client certificate (deploy/certs.sh client)", c.CertFile)
			}
		}
	}
	if c.KeyFile != "" {
		b, err := readTLSFile(c.KeyFile)
		if err != nil {
			add("key_file", false, "%v", err)
		} else if err := parsePrivateKey(b); err != nil {
			add("key_file", false, "%s: %v", c.KeyFile, err)
		} else {
			keyPEM = b
			if st, err := os.Stat(c.KeyFile); err == nil && st.Mode().Perm()&0o004 != 0 {
				add("key_file", true, "%s: every user of this host can read it (mode %04o): make it 0640, group of the service's user", c.KeyFile, st.Mode().Perm())
			}
		}
	}
	if certPEM != nil && keyPEM != nil {
		if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
			add("key_file", false, "%s does not belong to the certificate in %s: %v", c.KeyFile, c.CertFile, err)
		}
	}
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
			add("cert_file", true, "%s: not signed by a CA in %s (%v): etcd accepts it only if its --trusted-ca-file holds the CA that signed it", c.CertFile, c.CAFile, err)
		}
	}
	return out
}

// readTLSFile reads a file and says plainly why it cannot: missing, or not
// readable by the user this runs as (the service's user when the check
// runs as it).
func readTLSFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		return b, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s: no such file", path)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("%s: %s cannot read it (permission denied)", path, runningUser())
	default:
		return nil, err
	}
}

// runningUser names the effective user, as "user meridian (uid 998)".
func runningUser() string {
	uid := os.Geteuid()
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("user %s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

// pemBlocks decodes every PEM block of b.
func pemBlocks(b []byte) []*pem.Block {
	var blocks []*pem.Block
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return blocks
		}
		blocks = append(blocks, blk)
	}
}

// isKeyBlock says whether a PEM block holds a private key.
func isKeyBlock(b *pem.Block) bool { return strings.HasSuffix(b.Type, "PRIVATE KEY") }

// parseCABundle reads a CA file: certificates only, at least one of them
// a CA or self-signed (a trust anchor); the same pool Connect builds.
func parseCABundle(b []byte) (*x509.CertPool, []*x509.Certificate, error) {
	blocks := pemBlocks(b)
	if len(blocks) == 0 {
		return nil, nil, errors.New("no PEM certificate in it")
	}
	pool := x509.NewCertPool()
	var certs []*x509.Certificate
	for i, blk := range blocks {
		if isKeyBlock(blk) {
			return nil, nil, errors.New("it holds a private key, not CA certificates: is it the key_file?")
		}
		if blk.Type != "CERTIFICATE" {
			return nil, nil, fmt.Errorf("PEM block %d is a %s, not a CERTIFICATE", i+1, blk.Type)
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("certificate %d: %w", i+1, err)
		}
		if !cert.IsCA && !selfSigned(cert) {
			return nil, nil, fmt.Errorf("certificate %d (%s) is not a CA certificate: is it the cert_file? ca_file holds the CA that signed the etcd members' certificates", i+1, cert.Subject)
		}
		pool.AddCert(cert)
		certs = append(certs, cert)
	}
	return pool, certs, nil
}

func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

// parseCertChain reads a certificate file: the client's certificate
// first, then any intermediates.
func parseCertChain(b []byte) ([]*x509.Certificate, error) {
	blocks := pemBlocks(b)
	if len(blocks) == 0 {
		return nil, errors.New("no PEM certificate in it")
	}
	var certs []*x509.Certificate
	for i, blk := range blocks {
		if isKeyBlock(blk) {
			if i == 0 {
				return nil, errors.New("it holds a private key, not a certificate: is it the key_file?")
			}
			return nil, errors.New("it holds a private key after the certificate: keep the key in key_file only")
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is a %s, not a CERTIFICATE", i+1, blk.Type)
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i+1, err)
		}
		certs = append(certs, cert)
	}
	return certs, nil
}

// parsePrivateKey reads a key file: one unencrypted private key (PKCS #8,
// SEC 1 EC or PKCS #1 RSA), as crypto/tls loads it.
func parsePrivateKey(b []byte) error {
	blocks := pemBlocks(b)
	var keys []*pem.Block
	for _, blk := range blocks {
		switch {
		case blk.Type == "ENCRYPTED PRIVATE KEY" || blk.Headers["Proc-Type"] == "4,ENCRYPTED":
			return errors.New("the key is encrypted: Meridian cannot ask for its passphrase; keep it unencrypted, readable by the service's user only")
		case isKeyBlock(blk):
			keys = append(keys, blk)
		}
	}
	switch {
	case len(keys) == 0 && len(blocks) > 0 && blocks[0].Type == "CERTIFICATE":
		return errors.New("it holds a certificate, not a private key: is it the cert_file?")
	case len(keys) == 0:
		return errors.New("no PEM private key in it")
	case len(keys) > 1:
		return fmt.Errorf("%d private keys in it: want one", len(keys))
	}
	var key crypto.PrivateKey
	var err error
	switch keys[0].Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(keys[0].Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(keys[0].Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(keys[0].Bytes)
	default:
		return fmt.Errorf("a %s is no key type TLS uses", keys[0].Type)
	}
	if err != nil {
		return fmt.Errorf("the private key does not parse: %w", err)
	}
	switch key.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
		return nil
	default:
		return fmt.Errorf("a %T is no key type TLS uses", key)
	}
}

// validity says whether a certificate is outside its validity period or
// ends within expirySoon; "" when neither.
func validity(c *x509.Certificate, now time.Time) string {
	switch {
	case now.After(c.NotAfter):
		return "expired on " + c.NotAfter.UTC().Format(time.DateOnly) + ": TLS with etcd fails until it is renewed"
	case now.Before(c.NotBefore):
		return "is not valid before " + c.NotBefore.UTC().Format(time.RFC3339) + ": is this host's clock right?"
	case c.NotAfter.Sub(now) < expirySoon:
		return "expires on " + c.NotAfter.UTC().Format(time.DateOnly) + ": renew it"
	}
	return ""
}

// forClientAuth says whether a certificate may authenticate a TLS client:
// no extended key usage at all, or one that names client authentication.
func forClientAuth(c *x509.Certificate) bool {
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return true
	}
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}
