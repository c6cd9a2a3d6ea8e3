// Package geo locates clients: GeoIP2/GeoLite2/DB-IP country and city
// databases read through github.com/oschwald/geoip2-golang/v2, ISO 3166
// country and continent tables, and the builder of a country database from
// Debian's tor-geoipdb files.
//
// A DB is read whole into memory (not memory-mapped) and never changes, so
// lookups need no locks and a Reloader can swap databases atomically and
// leave the old one to the garbage collector. Locate on a country database
// does not allocate: each record is decoded once when the database opens.
// Records without coordinates get their country's (or continent's) point
// from the tables, so distance-based steering works with country data.
//
// geo may import geoip2-golang, maxminddb-golang, mmdbwriter and the
// standard library; it never imports other Meridian packages.
package geo
