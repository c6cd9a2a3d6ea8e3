package tlsfiles

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CA is a certificate authority that issues certificates: an ECDSA P-256
// key and its self-signed certificate.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
	KeyPEM  []byte
}

// Leaf describes a certificate to issue.
type Leaf struct {
	CommonName string
	DNSNames   []string
	IPs        []net.IP
	// Usage is the extended key usage: client or server authentication,
	// or both.
	Usage               []x509.ExtKeyUsage
	NotBefore, NotAfter time.Time
	// CA makes a certificate that may sign others (an intermediate).
	CA bool
}

// NewCA makes a CA valid from notBefore to notAfter.
func NewCA(commonName string, notBefore, notAfter time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl, err := template(Leaf{CommonName: commonName, NotBefore: notBefore, NotAfter: notAfter, CA: true}, &key.PublicKey)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	keyPEM, err := keyToPEM(key)
	if err != nil {
		return nil, err
	}
	return ParseCA(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM)
}

// ParseCA reads a CA's certificate and key, as NewCA makes them.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%s is not a CA certificate", cert.Subject)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil || !isKeyBlock(kb) {
		return nil, errors.New("no PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, err
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("the key is not the certificate's")
	}
	return &CA{Cert: cert, Key: key, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// Issue makes a new key and a certificate for it that the CA signs, both
// PEM-encoded.
func (ca *CA) Issue(l Leaf) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl, err := template(l, &key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = keyToPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// template is the certificate l describes, for pub: a random serial, the
// key's identifier, key usages as a CA or an end entity needs them.
func template(l Leaf, pub *ecdsa.PublicKey) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	ski := sha256.Sum256(der)
	t := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: l.CommonName},
		NotBefore: l.NotBefore, NotAfter: l.NotAfter,
		DNSNames: l.DNSNames, IPAddresses: l.IPs, ExtKeyUsage: l.Usage,
		SubjectKeyId:          ski[:20],
		BasicConstraintsValid: true, IsCA: l.CA,
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if l.CA {
		t.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		t.MaxPathLenZero = true
	}
	return t, nil
}

func keyToPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// WriteFile replaces the file at path with data, with mode whatever the
// umask: through a temporary file in the same directory, synced and
// renamed over it, so that a reader sees the old file or the new one,
// never a part.
func WriteFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// IssueFiles issues a certificate (Issue) and writes it to certFile
// (mode 0644) and its key to keyFile (mode 0600), the key first.
func (ca *CA) IssueFiles(certFile, keyFile string, l Leaf) error {
	certPEM, keyPEM, err := ca.Issue(l)
	if err != nil {
		return err
	}
	return writePair(certFile, certPEM, keyFile, keyPEM)
}

// WriteFiles writes the CA's certificate to certFile (mode 0644) and its
// key to keyFile (mode 0600), the key first.
func (ca *CA) WriteFiles(certFile, keyFile string) error {
	return writePair(certFile, ca.CertPEM, keyFile, ca.KeyPEM)
}

func writePair(certFile string, certPEM []byte, keyFile string, keyPEM []byte) error {
	if err := WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	return WriteFile(certFile, certPEM, 0o644)
}
