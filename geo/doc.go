// Package geo locates clients: GeoIP2/GeoLite2/DB-IP country and city
// databases read through github.com/oschwald/geoip2-golang/v2, ISO 3166
// country and continent tables, and the builder of a country database from
// Debian's tor-geoipdb files.
//
// geo may import geoip2-golang, maxminddb-golang, mmdbwriter and the
// standard library; it never imports other Meridian packages.
package geo
