package regions

import "math/bits"

// slotWords is how many 64-bit words hold one bit per region of a service.
const slotWords = (MaxRegions + 63) / 64

// slotSet is a set of a service's slots (positions in its region list) as
// a bit set. It lives on the stack of a decision: a fixed-size value, so
// narrowing candidates never allocates, and members come out in service
// order.
type slotSet [slotWords]uint64

func (s *slotSet) add(i int)      { s[i>>6] |= 1 << (uint(i) & 63) }
func (s *slotSet) remove(i int)   { s[i>>6] &^= 1 << (uint(i) & 63) }
func (s *slotSet) has(i int) bool { return i >= 0 && s[i>>6]&(1<<(uint(i)&63)) != 0 }

// count counts the members among the first nw words.
func (s *slotSet) count(nw int) int {
	n := 0
	for _, w := range s[:nw] {
		n += bits.OnesCount64(w)
	}
	return n
}

// first is the lowest member, or -1.
func (s *slotSet) first(nw int) int {
	for i, w := range s[:nw] {
		if w != 0 {
			return i<<6 + bits.TrailingZeros64(w)
		}
	}
	return -1
}

// single is the set holding only i.
// keepOnly narrows s, whose members are all among the first nw words,
// to slot i alone. Only those words are written: a slotSet is 128 bytes,
// and a service rarely needs more than one word.
func (s *slotSet) keepOnly(i, nw int) {
	clear(s[:nw])
	s.add(i)
}

func single(i int) slotSet {
	var s slotSet
	s.add(i)
	return s
}
