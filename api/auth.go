package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"

	"go.yaml.in/yaml/v3"

	"github.com/meridian-gslb/meridian/regions"
)

// Role says what a token may do.
type Role string

// The roles: admin reads and writes, read only reads.
const (
	RoleAdmin Role = "admin"
	RoleRead  Role = "read"
)

// Token is one API token: its name (recorded in the audit log), its role,
// and the SHA-256 of its secret. The secret itself is not kept.
type Token struct {
	Name string
	Role Role
	hash [sha256.Size]byte
}

// MinTokenLen is the shortest secret a tokens file may hold.
const MinTokenLen = 16

// tokensFile is the YAML file of tokens:
//
//	tokens:
//	  - name: alice
//	    role: admin
//	    sha256: 9f86d0...   # of the secret; or
//	    token: s3cr3t...    # the secret itself
type tokensFile struct {
	Tokens []tokenEntry `yaml:"tokens"`
}

type tokenEntry struct {
	Name   string `yaml:"name"`
	Role   Role   `yaml:"role"`
	Token  string `yaml:"token"`
	SHA256 string `yaml:"sha256"`
}

var tokenNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// LoadTokens reads a tokens file. Every problem is reported, each with the
// file, line and field (regions.FileError).
func LoadTokens(path string) ([]Token, error) {
	data, mode, err := readWithMode(path)
	if err != nil {
		return nil, &regions.FileError{File: path, Msg: err.Error(), Err: err}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &regions.FileError{File: path, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var f tokensFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, &regions.FileError{File: path, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	items := tokenNodes(&root)
	var errs []error
	add := func(i int, field, format string, args ...any) {
		line := 0
		if i < len(items) {
			line = items[i].Line
		}
		errs = append(errs, &regions.FileError{File: path, Line: line, Field: fmt.Sprintf("tokens[%d].%s", i, field), Msg: fmt.Sprintf(format, args...)})
	}
	var out []Token
	names := map[string]bool{}
	plain := false // a secret is in the file itself
	for i, e := range f.Tokens {
		t := Token{Name: e.Name, Role: e.Role}
		switch {
		case !tokenNameRE.MatchString(e.Name):
			add(i, "name", "%q: want 1 to 64 letters, digits, '.', '_', '@' or '-'", e.Name)
		case names[e.Name]:
			add(i, "name", "%q is given twice", e.Name)
		}
		names[e.Name] = true
		if e.Role != RoleAdmin && e.Role != RoleRead {
			add(i, "role", "%q: want admin or read", e.Role)
		}
		switch {
		case (e.Token == "") == (e.SHA256 == ""):
			add(i, "token", "give either token (the secret) or sha256 (its SHA-256 in hex)")
		case e.Token != "" && len(e.Token) < MinTokenLen:
			add(i, "token", "shorter than %d characters", MinTokenLen)
		case e.Token != "" && mode&0o004 != 0 && !plain:
			// Reported once, on the first secret: the file as a whole
			// is what is open.
			add(i, "token", "the file holds secrets (token:) and every user of this host can read it (mode %04o): make it readable by the server's user only (chmod 0600, or 0640 with its group), or give each token as its sha256 instead", mode.Perm())
			plain = true
		case e.Token != "":
			t.hash = sha256.Sum256([]byte(e.Token))
		default:
			b, err := hex.DecodeString(e.SHA256)
			if err != nil || len(b) != sha256.Size {
				add(i, "sha256", "want 64 hex digits")
			}
			copy(t.hash[:], b)
		}
		out = append(out, t)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// readWithMode reads a file and its permissions through one descriptor,
// so that the mode is the one of the bytes read.
func readWithMode(path string) ([]byte, fs.FileMode, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	data, err := io.ReadAll(f)
	return data, st.Mode().Perm(), err
}

// tokenNodes finds the YAML nodes of the tokens list, for line numbers.
func tokenNodes(root *yaml.Node) []*yaml.Node {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "tokens" && n.Content[i+1].Kind == yaml.SequenceNode {
			return n.Content[i+1].Content
		}
	}
	return nil
}

// CreateAdminToken sets up a fresh installation: when tokensPath does not
// exist, it writes a new secret to secretPath (or reuses the one there)
// and a tokens file holding its SHA-256 as the admin token "admin", both
// readable by the owner only. created is false when tokensPath exists.
func CreateAdminToken(tokensPath, secretPath string) (created bool, err error) {
	if _, err := os.Stat(tokensPath); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	secret := ""
	if b, err := os.ReadFile(secretPath); err == nil && len(strings.TrimSpace(string(b))) >= MinTokenLen {
		secret = strings.TrimSpace(string(b))
	} else {
		var r [32]byte
		if _, err := rand.Read(r[:]); err != nil {
			return false, err
		}
		secret = hex.EncodeToString(r[:])
		if err := writePrivate(secretPath, []byte(secret+"\n"), false); err != nil {
			return false, err
		}
	}
	sum := sha256.Sum256([]byte(secret))
	body := "# API tokens (docs/architecture.md, HTTP API). Each has a name, recorded\n" +
		"# in the audit log, a role (admin: read and write; read: read only) and\n" +
		"# either the secret (token:) or its SHA-256 in hex (sha256:).\n" +
		"tokens:\n  - name: admin\n    role: admin\n    sha256: " + hex.EncodeToString(sum[:]) + "\n"
	if err := writePrivate(tokensPath, []byte(body), true); err != nil {
		return false, err
	}
	return true, nil
}

// writePrivate writes a file readable by its owner only; exclusive
// refuses to replace one.
func writePrivate(path string, data []byte, exclusive bool) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if exclusive {
		flags |= os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Auth decides who may call the API: tokens by role, and whether reads
// need one. The tokens can be replaced while serving (SetTokens).
type Auth struct {
	tokens    atomic.Pointer[[]Token]
	openReads bool
}

// NewAuth checks requests against tokens. With openReads, requests that
// only read need no token (a token given must still be valid).
func NewAuth(tokens []Token, openReads bool) *Auth {
	a := &Auth{openReads: openReads}
	a.SetTokens(tokens)
	return a
}

// SetTokens replaces the tokens (a reload).
func (a *Auth) SetTokens(tokens []Token) {
	t := append([]Token(nil), tokens...)
	a.tokens.Store(&t)
}

// find returns the token whose secret is s, comparing with every token in
// constant time.
func (a *Auth) find(s string) *Token {
	sum := sha256.Sum256([]byte(s))
	ts := *a.tokens.Load()
	var found *Token
	for i := range ts {
		if subtle.ConstantTimeCompare(sum[:], ts[i].hash[:]) == 1 {
			found = &ts[i]
		}
	}
	return found
}

// access is what a route needs.
type access int

const (
	accessOpen  access = iota // health, metrics, the OpenAPI document
	accessRead                // a read token, or none when reads are open
	accessWrite               // an admin token
)

type callerKey struct{}

// caller is the name of the token a request came with, "" without one.
func caller(ctx context.Context) string {
	if t, ok := ctx.Value(callerKey{}).(*Token); ok {
		return t.Name
	}
	return ""
}

// guard wraps a handler with the token check its access needs: 401
// without a valid token, 403 with one that may not write.
func (a *apiServer) guard(need access, h http.HandlerFunc) http.HandlerFunc {
	if need == accessOpen {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		auth := a.opts.Auth
		secret, given, bad := bearer(r)
		unauthorized := func(detail, errCode string) {
			v := `Bearer realm="meridian"`
			if errCode != "" {
				v += `, error="` + errCode + `"`
			}
			w.Header().Set("WWW-Authenticate", v)
			writeProblem(w, Problem{Status: http.StatusUnauthorized, Detail: detail})
		}
		switch {
		case bad != "":
			unauthorized(bad, "invalid_request")
			return
		case auth == nil && need == accessWrite:
			unauthorized("this server has no API tokens (api.tokens_file): the API is read-only", "")
			return
		case auth == nil:
			h(w, r)
			return
		case !given && need == accessRead && auth.openReads:
			h(w, r)
			return
		case !given:
			unauthorized("this request needs a token: Authorization: Bearer TOKEN", "")
			return
		}
		tok := auth.find(secret)
		switch {
		case tok == nil:
			unauthorized("the token is not valid", "invalid_token")
		case need == accessWrite && tok.Role != RoleAdmin:
			writeProblem(w, Problem{Status: http.StatusForbidden,
				Detail: "the token " + strconv.Quote(tok.Name) + " has the role " + string(tok.Role) + ": only admin tokens may change state"})
		default:
			h(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, tok)))
		}
	}
}

// bearer reads "Authorization: Bearer TOKEN"; bad says why a header that
// is there cannot be used.
func bearer(r *http.Request) (token string, given bool, bad string) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false, ""
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", true, "the Authorization header must be: Bearer TOKEN"
	}
	return strings.TrimSpace(tok), true, ""
}
