package store

// Changed returns a channel that is closed when the next snapshot is
// swapped in: take it, read Current, and wait on it for what follows.
// Time changes the answers too (a shift's expiry, a factor's move):
// Run swaps in a snapshot built again at the served one's NextChange,
// so a wait on Changed sees those as well.
func (l *Live) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.swapped
}
