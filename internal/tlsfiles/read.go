package tlsfiles

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
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

// Problem is one thing a check found wrong with a TLS file.
type Problem struct {
	Field   string // the configuration field naming the file
	Message string
	// Warning: TLS would still work (an expiry ahead, a key others can
	// read); otherwise loading the files or every handshake fails.
	Warning bool
}

// ExpirySoon is how far ahead checks warn of a certificate's end.
const ExpirySoon = 30 * 24 * time.Hour

// Read reads a file and says plainly why it cannot: missing, or not
// readable by the user this runs as (the service's user when a check
// runs as it).
func Read(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		return b, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s: no such file", path)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("%s: %s cannot read it (permission denied)", path, RunningUser())
	default:
		return nil, err
	}
}

// RunningUser names the effective user, as "user meridian (uid 998)".
func RunningUser() string {
	uid := os.Geteuid()
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("user %s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

// OpenToAll says whether every user of the host can read the file at
// path, with its mode; false when it cannot be stat'ed.
func OpenToAll(path string) (bool, os.FileMode) {
	st, err := os.Stat(path)
	if err != nil {
		return false, 0
	}
	return st.Mode().Perm()&0o004 != 0, st.Mode().Perm()
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

// ParseCABundle reads a CA file: certificates only, each a CA or
// self-signed (a trust anchor).
func ParseCABundle(b []byte) (*x509.CertPool, []*x509.Certificate, error) {
	blocks := pemBlocks(b)
	if len(blocks) == 0 {
		return nil, nil, errors.New("no PEM certificate in it")
	}
	pool := x509.NewCertPool()
	var certs []*x509.Certificate
	for i, blk := range blocks {
		if isKeyBlock(blk) {
			return nil, nil, errors.New("it holds a private key, not CA certificates: is it the key file?")
		}
		if blk.Type != "CERTIFICATE" {
			return nil, nil, fmt.Errorf("PEM block %d is a %s, not a CERTIFICATE", i+1, blk.Type)
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("certificate %d: %w", i+1, err)
		}
		if !cert.IsCA && !selfSigned(cert) {
			return nil, nil, fmt.Errorf("certificate %d (%s) is not a CA certificate: is it a server's or a client's certificate? A CA file holds the CA that signed them", i+1, cert.Subject)
		}
		pool.AddCert(cert)
		certs = append(certs, cert)
	}
	return pool, certs, nil
}

func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

// ParseCertChain reads a certificate file: the certificate first, then
// any intermediates.
func ParseCertChain(b []byte) ([]*x509.Certificate, error) {
	blocks := pemBlocks(b)
	if len(blocks) == 0 {
		return nil, errors.New("no PEM certificate in it")
	}
	var certs []*x509.Certificate
	for i, blk := range blocks {
		if isKeyBlock(blk) {
			if i == 0 {
				return nil, errors.New("it holds a private key, not a certificate: is it the key file?")
			}
			return nil, errors.New("it holds a private key after the certificate: keep the key in the key file only")
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

// ReadCertificates reads a certificate file (ParseCertChain), saying
// which file when it cannot.
func ReadCertificates(path string) ([]*x509.Certificate, error) {
	b, err := Read(path)
	if err != nil {
		return nil, err
	}
	certs, err := ParseCertChain(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return certs, nil
}

// ParsePrivateKey reads a key file: one unencrypted private key (PKCS #8,
// SEC 1 EC or PKCS #1 RSA), as crypto/tls loads it.
func ParsePrivateKey(b []byte) error {
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
		return errors.New("it holds a certificate, not a private key: is it the certificate file?")
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

// Validity says whether a certificate is outside its validity period or
// ends within ExpirySoon; "" when neither.
func Validity(c *x509.Certificate, now time.Time) string {
	switch {
	case now.After(c.NotAfter):
		return "expired on " + c.NotAfter.UTC().Format(time.DateOnly) + ": TLS with it fails until it is renewed"
	case now.Before(c.NotBefore):
		return "is not valid before " + c.NotBefore.UTC().Format(time.RFC3339) + ": is this host's clock right?"
	case c.NotAfter.Sub(now) < ExpirySoon:
		return "expires on " + c.NotAfter.UTC().Format(time.DateOnly) + ": renew it"
	}
	return ""
}

// ForClientAuth says whether a certificate may authenticate a TLS client:
// no extended key usage at all, or one that names client authentication.
func ForClientAuth(c *x509.Certificate) bool { return hasUsage(c, x509.ExtKeyUsageClientAuth) }

// ForServerAuth says whether a certificate may authenticate a TLS server:
// no extended key usage at all, or one that names server authentication.
func ForServerAuth(c *x509.Certificate) bool { return hasUsage(c, x509.ExtKeyUsageServerAuth) }

func hasUsage(c *x509.Certificate, want x509.ExtKeyUsage) bool {
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return true
	}
	for _, u := range c.ExtKeyUsage {
		if u == want || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}
