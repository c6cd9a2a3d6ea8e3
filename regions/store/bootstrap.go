package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/meridian-gslb/meridian/regions"
)

// Bootstrap creates the regions (first) and services of d that etcd does
// not have, and leaves existing ones alone: after the first start the REST
// API owns them. It returns the keys it created ("regions/eu-west",
// "services/www.gslb.example."); running it again creates nothing. It
// creates the services' mark if etcd has none (EnsureServicesMark).
func Bootstrap(ctx context.Context, s *Store, d *regions.Desired) ([]string, error) {
	if err := s.EnsureServicesMark(ctx); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	var created []string
	for _, r := range d.Regions {
		_, err := s.PutRegion(ctx, r, IfAbsent(), By("bootstrap"))
		switch {
		case err == nil:
			created = append(created, "regions/"+r.Name)
		case errors.Is(err, ErrConflict):
		default:
			return created, fmt.Errorf("bootstrap: %w", err)
		}
	}
	for _, svc := range d.Services {
		_, err := s.PutService(ctx, svc, IfAbsent(), By("bootstrap"))
		switch {
		case err == nil:
			created = append(created, "services/"+svc.Name)
		case errors.Is(err, ErrConflict):
		default:
			return created, fmt.Errorf("bootstrap: %w", err)
		}
	}
	return created, nil
}
