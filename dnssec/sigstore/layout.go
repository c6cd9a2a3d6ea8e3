package sigstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-gslb/meridian/dnssec"
	"github.com/meridian-gslb/meridian/regions/store"
)

// layout names a zone's keys under store.Keys.DNSSEC(zone):
//
//	keys             the zone's dnssec.KeyRecords (JSON)
//	signer/<lease>   the signers' election: the leader is the oldest key (its value a SignerInfo)
//	signed           what the leader signed last (Signed, JSON)
//	sigs/<hash>      the signatures of one RRset (dnssec.Entry.Encode), by dnssec.Hash in hex
type layout struct{ keys store.Keys }

func newLayout(prefix string) layout { return layout{store.NewKeys(prefix)} }

func (l layout) zone(z string) string               { return l.keys.DNSSEC(z) }
func (l layout) records(z string) string            { return l.zone(z) + "keys" }
func (l layout) election(z string) string           { return l.zone(z) + "signer" } // concurrency adds the "/"
func (l layout) signed(z string) string             { return l.zone(z) + "signed" }
func (l layout) sigs(z string) string               { return l.zone(z) + "sigs/" }
func (l layout) sig(z string, h dnssec.Hash) string { return l.sigs(z) + h.String() }

// kind tells the keys of a zone apart; zone is "" for keys of no zone.
func (l layout) parse(key string) (zone, kind, rest string) {
	r, ok := strings.CutPrefix(key, l.keys.DNSSECAll())
	if !ok {
		return "", "", ""
	}
	zone, r, ok = strings.Cut(r, "/")
	if !ok {
		return "", "", ""
	}
	kind, rest, _ = strings.Cut(r, "/")
	return zone, kind, rest
}

// SignerInfo is the value of a signer's election key: who signs.
type SignerInfo struct {
	ID      string    `json:"id"` // host and process
	Started time.Time `json:"started"`
}

// Signed is what the leading signer of a zone signed last.
type Signed struct {
	// Revision is the etcd revision of the regions state it signed.
	Revision int64     `json:"revision"`
	At       time.Time `json:"at"`
	Signer   string    `json:"signer"`
	Entries  int       `json:"entries"` // RRsets with signatures published
	// Expires is when the first published signature expires.
	Expires time.Time `json:"expires,omitzero"`
}

// GetRecords reads a zone's key records; nil when there are none.
func GetRecords(ctx context.Context, c *clientv3.Client, prefix, zone string) (*dnssec.KeyRecords, error) {
	resp, err := c.Get(ctx, newLayout(prefix).records(zone))
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	return decodeRecords(resp.Kvs[0].Value)
}

func decodeRecords(b []byte) (*dnssec.KeyRecords, error) {
	kr := new(dnssec.KeyRecords)
	if err := json.Unmarshal(b, kr); err != nil {
		return nil, fmt.Errorf("key records: %w", err)
	}
	if err := kr.Validate(); err != nil {
		return nil, fmt.Errorf("key records: %w", err)
	}
	return kr, nil
}
