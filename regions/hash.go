package regions

import (
	"math"
	"net/netip"
)

// Sticky choices are a weighted rendezvous hash: each candidate region
// scores weight / -ln(u), u uniform in (0,1) from a hash of (client
// network, region name), and the highest score wins. A client keeps its
// region while the candidates stay the same, and removing a region moves
// only the clients that region had.
//
// The hash is spelled out here (FNV-1a over the bytes, then the
// SplitMix64 finalizer) rather than taken from hash/maphash, whose seed
// differs per process: every server, on every machine and version, must
// pick the same region for the same client, or a resolver that asks two of
// them would flap. TestStickyHashStable pins the values.

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// mix64 is the SplitMix64 finalizer: a bijection with full avalanche.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// regionHash hashes a region name for rendezvous scoring.
func regionHash(name string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= fnvPrime
	}
	return mix64(h)
}

// networkHash hashes the client network: addr masked to bits. The family
// and the length are part of the input, so 10.0.0.0/8 and ::a00:0/104, or
// a /24 and a /16 that share their first bytes, hash apart.
func networkHash(addr netip.Addr, bits int) uint64 {
	h := uint64(fnvOffset)
	step := func(b byte) {
		h ^= uint64(b)
		h *= fnvPrime
	}
	if addr.Is4() {
		p, _ := addr.Prefix(bits)
		a := p.Addr().As4()
		step(4)
		for _, b := range a {
			step(b)
		}
	} else {
		p, _ := addr.Prefix(bits)
		a := p.Addr().As16()
		step(6)
		for _, b := range a {
			step(b)
		}
	}
	step(byte(bits))
	return mix64(h)
}

// stickyScore is the rendezvous score of a region for a network.
func stickyScore(netHash, regHash uint64, weight uint64) float64 {
	x := mix64(netHash ^ (regHash * 0x9e3779b97f4a7c15))
	// 53 random bits, shifted off 0 and 1 so the logarithm is finite and
	// non-zero.
	u := (float64(x>>11) + 0.5) / (1 << 53)
	return float64(weight) / -math.Log(u)
}

// spillPosition is a network's position in a region's order of its
// clients, uniform over the uint64s: a region that keeps the fraction p
// of its clients keeps those below p × 2^64 (docs/controller.md). Mixed
// apart from stickyScore's, so that which clients a region sheds does
// not follow which regions they prefer.
func spillPosition(netHash, regHash uint64) uint64 {
	return mix64(netHash ^ (regHash * 0xc2b2ae3d27d4eb4f) ^ 0x165667b19e3779f9)
}
