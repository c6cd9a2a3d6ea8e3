package embedded

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/meridian-gslb/meridian/internal/tlsfiles"
)

// The embedded member takes only clients that show a certificate of its
// own small CA, on its client port and its peer port alike: any process
// on the host could otherwise connect to its loopback ports and read or
// rewrite the state without the API's tokens and audit log. The CA and
// the certificates are made on the first start, in a directory of the
// data directory that only the server's user can enter, keys mode 0600:
// the server's client certificate and one for the probers that run
// beside it (those of `make run`) are what a process must read to talk to
// the member, so the file system's permissions decide who may, as they
// would for a Unix socket in that directory, and etcd's own TLS checks
// them on loopback TCP, where etcdctl and the probers reach it as they
// reach a production cluster (docs/architecture.md, The embedded etcd).

// The files of a PKI directory.
const (
	pkiCA           = "ca.pem"
	pkiCAKey        = "ca-key.pem"
	pkiMember       = "member.pem" // the member's, for clients and peers
	pkiMemberKey    = "member-key.pem"
	pkiServer       = "server.pem" // the server's client certificate
	pkiServerKey    = "server-key.pem"
	pkiProber       = "prober.pem" // the probers' client certificate
	pkiProberKey    = "prober-key.pem"
	pkiCAValidity   = 10 * 365 * 24 * time.Hour
	pkiLeafValidity = 10 * 365 * 24 * time.Hour
	// A certificate is made anew at a start within this of its end, so
	// that none ends under a server restarted at least once a year.
	pkiRenewBefore = 365 * 24 * time.Hour
)

// PKI is the TLS material of an embedded member in its directory.
type PKI struct {
	Dir string
}

// MemberTLS is the member's TLS: the CA whose client and peer
// certificates it accepts (none other), and its own certificate.
func (p PKI) MemberTLS() *MemberTLS {
	return &MemberTLS{CAFile: p.path(pkiCA), CertFile: p.path(pkiMember), KeyFile: p.path(pkiMemberKey)}
}

// Client names the files of a client of the member: the CA that signed
// the member's certificate, and a client certificate with its key.
type Client struct{ CAFile, CertFile, KeyFile string }

// Server is the server's client certificate.
func (p PKI) Server() Client {
	return Client{CAFile: p.path(pkiCA), CertFile: p.path(pkiServer), KeyFile: p.path(pkiServerKey)}
}

// Prober is the client certificate of probers on the server's host.
func (p PKI) Prober() Client {
	return Client{CAFile: p.path(pkiCA), CertFile: p.path(pkiProber), KeyFile: p.path(pkiProberKey)}
}

// Certificates names every certificate file, by what it is for.
func (p PKI) Certificates() map[string]string {
	return map[string]string{"embedded_etcd_ca": p.path(pkiCA), "embedded_etcd_member": p.path(pkiMember),
		"embedded_etcd_client": p.path(pkiServer)}
}

func (p PKI) path(name string) string { return filepath.Join(p.Dir, name) }

// EnsurePKI makes or completes the TLS material of a member whose client
// and peer URLs are cfg's, in dir: the directory (mode 0700), the CA,
// and the member's, the server's and the probers' certificates, each
// made anew when it is missing, does not load, is not the CA's, does not
// name the member's addresses or ends within a year. A CA that does not
// load or ends within a year is replaced, with every certificate. Keys
// are mode 0600; a key or the directory found open to others is closed
// again, with a warning. What it made is logged.
func EnsurePKI(dir string, cfg Config, now time.Time, log *slog.Logger) (PKI, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := PKI{Dir: dir}
	ips, err := memberIPs(cfg)
	if err != nil {
		return p, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return p, fmt.Errorf("embedded etcd tls: %w", err)
	}
	if st, err := os.Stat(dir); err != nil {
		return p, fmt.Errorf("embedded etcd tls: %w", err)
	} else if st.Mode().Perm() != 0o700 {
		log.Warn("embedded etcd tls: the directory was open to others; made 0700 again", "dir", dir, "mode", fmt.Sprintf("%04o", st.Mode().Perm()))
		if err := os.Chmod(dir, 0o700); err != nil {
			return p, fmt.Errorf("embedded etcd tls: %w", err)
		}
	}
	ca, err := p.loadCA(now)
	renewAll := false
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			log.Warn("embedded etcd tls: making a new CA and certificates", "reason", err)
		}
		if ca, err = tlsfiles.NewCA("meridian embedded etcd CA", now.Add(-time.Hour), now.Add(pkiCAValidity)); err != nil {
			return p, fmt.Errorf("embedded etcd tls: %w", err)
		}
		if err := ca.WriteFiles(p.path(pkiCA), p.path(pkiCAKey)); err != nil {
			return p, fmt.Errorf("embedded etcd tls: %w", err)
		}
		renewAll = true
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	leaves := []struct {
		cert, key string
		leaf      tlsfiles.Leaf
	}{
		{pkiMember, pkiMemberKey, tlsfiles.Leaf{CommonName: "meridian embedded etcd member", IPs: ips,
			Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}},
		{pkiServer, pkiServerKey, tlsfiles.Leaf{CommonName: "meridian-server", Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}},
		{pkiProber, pkiProberKey, tlsfiles.Leaf{CommonName: "meridian-prober", Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}},
	}
	var made []string
	for _, l := range leaves {
		if !renewAll {
			if why := p.leafProblem(l.cert, l.key, pool, l.leaf, now); why == "" {
				closeKey(log, p.path(l.key))
				continue
			} else if !errors.Is(statErr(p.path(l.cert)), fs.ErrNotExist) {
				log.Warn("embedded etcd tls: making a new certificate", "file", p.path(l.cert), "reason", why)
			}
		}
		leaf := l.leaf
		leaf.NotBefore, leaf.NotAfter = now.Add(-time.Hour), now.Add(pkiLeafValidity)
		if err := ca.IssueFiles(p.path(l.cert), p.path(l.key), leaf); err != nil {
			return p, fmt.Errorf("embedded etcd tls: %w", err)
		}
		made = append(made, l.cert)
	}
	closeKey(log, p.path(pkiCAKey))
	if renewAll || len(made) > 0 {
		log.Info("embedded etcd tls: certificates made", "dir", dir, "new_ca", renewAll, "certificates", made)
	}
	return p, nil
}

func statErr(path string) error {
	_, err := os.Stat(path)
	return err
}

// loadCA reads the CA; an error when it is missing (fs.ErrNotExist),
// does not load or ends within a year.
func (p PKI) loadCA(now time.Time) (*tlsfiles.CA, error) {
	certPEM, err := os.ReadFile(p.path(pkiCA))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(p.path(pkiCAKey))
	if err != nil {
		return nil, err
	}
	ca, err := tlsfiles.ParseCA(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.path(pkiCA), err)
	}
	if ca.Cert.NotAfter.Sub(now) < pkiRenewBefore {
		return nil, fmt.Errorf("%s ends on %s", p.path(pkiCA), ca.Cert.NotAfter.UTC().Format(time.DateOnly))
	}
	return ca, nil
}

// leafProblem says why a certificate must be made anew: "" when it loads
// with its key, the CA signed it, it names want's addresses and it does
// not end within a year.
func (p PKI) leafProblem(certName, keyName string, roots *x509.CertPool, want tlsfiles.Leaf, now time.Time) string {
	probs, leaf, _ := tlsfiles.CheckPair(tlsfiles.Pair{CertField: certName, CertFile: p.path(certName), KeyField: keyName, KeyFile: p.path(keyName),
		Usage: want.Usage[0]}, now)
	if errs := tlsfiles.Errors(probs); len(errs) > 0 {
		return errs[0].Message
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: want.Usage}); err != nil {
		return err.Error()
	}
	if leaf.NotAfter.Sub(now) < pkiRenewBefore {
		return "it ends on " + leaf.NotAfter.UTC().Format(time.DateOnly)
	}
	for _, ip := range want.IPs {
		if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
			return "it does not name " + ip.String()
		}
	}
	return ""
}

// closeKey makes a key file readable by its owner only, if it is not.
func closeKey(log *slog.Logger, path string) {
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() == 0o600 {
		return
	}
	log.Warn("embedded etcd tls: a key was open to others; made 0600 again", "file", path, "mode", fmt.Sprintf("%04o", st.Mode().Perm()))
	if err := os.Chmod(path, 0o600); err != nil {
		log.Error("embedded etcd tls: cannot close a key", "file", path, "err", err)
	}
}

// memberIPs are the addresses of cfg's client and peer URLs, which the
// member's certificate must name.
func memberIPs(cfg Config) ([]net.IP, error) {
	ec, err := embedConfig(cfg)
	if err != nil {
		return nil, err
	}
	var ips []net.IP
	for _, u := range append(ec.ListenClientUrls, ec.ListenPeerUrls...) {
		a, err := netip.ParseAddr(u.Hostname())
		if err != nil {
			return nil, fmt.Errorf("embedded etcd: %s: %w", u.Host, err)
		}
		ip := net.IP(a.AsSlice())
		if !slices.ContainsFunc(ips, ip.Equal) {
			ips = append(ips, ip)
		}
	}
	return ips, nil
}
