package geo

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/oschwald/geoip2-golang/v2"
	"github.com/oschwald/maxminddb-golang/v2"
)

// Location is where an address is, as far as the database knows.
type Location struct {
	Country   string       // ISO 3166-1 alpha-2, upper case; "" when unknown
	Continent string       // AF AN AS EU NA OC SA; "" when unknown
	Lat, Lon  float64      // degrees; valid only when HasCoords
	HasCoords bool         // Lat/Lon hold a point (from the record or our tables)
	Network   netip.Prefix // the database network that matched (IPv4 form for IPv4 addresses); !IsValid() when nothing matched
}

// Schema tells which record layout a database holds.
type Schema string

// The layouts Open accepts. Both carry country.iso_code, continent.code and
// optionally location.{latitude,longitude}; they differ in how many distinct
// records there are, which decides how lookups are cached.
const (
	SchemaCountry Schema = "country" // a few hundred distinct records
	SchemaCity    Schema = "city"    // up to millions of distinct records
)

// schemas lists the database_type values Open accepts. They are the
// Country/City family that geoip2-golang itself knows; geoip2-golang
// refuses any type outside its list, so adding a name here alone is not
// enough. The databases "meridian geoip build" writes say GeoLite2-Country
// because that names their record layout (see BuildTorCountryDB).
var schemas = map[string]Schema{
	"GeoLite2-Country":  SchemaCountry,
	"GeoIP2-Country":    SchemaCountry,
	"DBIP-Country-Lite": SchemaCountry,
	"DBIP-Country":      SchemaCountry,

	"GeoLite2-City":               SchemaCity,
	"GeoIP2-City":                 SchemaCity,
	"GeoIP2-City-Africa":          SchemaCity,
	"GeoIP2-City-Asia-Pacific":    SchemaCity,
	"GeoIP2-City-Europe":          SchemaCity,
	"GeoIP2-City-North-America":   SchemaCity,
	"GeoIP2-City-South-America":   SchemaCity,
	"GeoIP2-Precision-City":       SchemaCity,
	"GeoIP-City-Redacted-US":      SchemaCity,
	"DBIP-City-Lite":              SchemaCity,
	"DBIP-Location (compat=City)": SchemaCity,
	// Enterprise records are a superset of City records.
	"GeoIP2-Enterprise":                     SchemaCity,
	"GeoIP-Enterprise-Redacted-US":          SchemaCity,
	"DBIP-Location-ISP (compat=Enterprise)": SchemaCity,
}

// ErrUnsupported is wrapped by Open and OpenBytes when the file is a
// readable MaxMind DB whose type or content is not a country or city
// database.
var ErrUnsupported = errors.New("unsupported GeoIP database")

// Info describes an open database.
type Info struct {
	Path         string    `json:"path"`          // file it was read from; "" for OpenBytes
	DatabaseType string    `json:"database_type"` // metadata database_type, e.g. "GeoLite2-Country"
	Schema       Schema    `json:"schema"`
	Description  string    `json:"description"` // metadata description in English, if any
	BuildTime    time.Time `json:"build_time"`  // metadata build_epoch, UTC
	IPVersion    uint      `json:"ip_version"`  // 4 or 6
	NodeCount    uint      `json:"node_count"`  // search tree nodes
	RecordSize   uint      `json:"record_size"` // bits per search tree record
	Size         int       `json:"size_bytes"`  // bytes held in memory
	Records      int       `json:"records"`     // distinct data records decoded at open (country schema); 0 for city
	Countries    int       `json:"countries"`   // distinct countries among them (country schema)
}

// DB is an open GeoIP database held entirely in memory. It is safe for
// concurrent use and immutable once opened.
//
// The file is read into a byte slice rather than memory-mapped on purpose:
// a DB replaced by a Reloader is then simply dropped, and the garbage
// collector frees it only once no lookup still holds it. With mmap the old
// mapping would have to be unmapped by hand, which needs reference counting
// to avoid a use-after-unmap fault in a lookup that is still running. For
// the same reason DB has no Close: there is nothing to release early.
type DB struct {
	info Info
	// gr is the geoip2-golang reader; it vets the database type and reads
	// full records for operators (Record).
	gr *geoip2.Reader
	// mm reads the same bytes one level lower: its Lookup returns the
	// matched prefix and the record's data offset without decoding, which
	// lets the hot path map offset -> Location with no allocation.
	mm *maxminddb.Reader
	// byOffset holds every record of a country database, decoded once at
	// open. It is read-only afterwards, so lookups read it without locks.
	byOffset map[uintptr]Location
	// cache is a small direct-mapped cache of decoded city records. Entries
	// are immutable and swapped with atomic stores, so readers never lock.
	cache []atomic.Pointer[cacheEntry]
}

type cacheEntry struct {
	offset uintptr
	loc    Location
}

// cityCacheBits sizes the city record cache: 16384 slots cost 128 KiB plus
// the entries present.
const (
	cityCacheBits = 14
	cityCacheSize = 1 << cityCacheBits
)

// Open reads the whole file at path into memory and opens it (see DB for why
// it is not memory-mapped). It fails, naming the file and the type found,
// for anything that is not a country or city database.
func Open(path string) (*DB, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("geoip database: %w", err)
	}
	db, err := openBytes(b, path)
	if err != nil {
		return nil, fmt.Errorf("geoip database %s: %w", path, err)
	}
	return db, nil
}

// OpenBytes opens a database held in b. The DB keeps b: the caller must not
// modify it afterwards.
func OpenBytes(b []byte) (*DB, error) {
	db, err := openBytes(b, "")
	if err != nil {
		return nil, fmt.Errorf("geoip database: %w", err)
	}
	return db, nil
}

func openBytes(b []byte, path string) (*DB, error) {
	mm, err := maxminddb.OpenBytes(b)
	if err != nil {
		return nil, fmt.Errorf("not a readable MaxMind DB: %w", err)
	}
	dbType := mm.Metadata.DatabaseType
	schema, ok := schemas[dbType]
	if !ok {
		return nil, fmt.Errorf("%w: database type %q is not a country or city database", ErrUnsupported, dbType)
	}
	gr, err := geoip2.OpenBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%w: database type %q: %w", ErrUnsupported, dbType, err)
	}
	md := mm.Metadata
	db := &DB{
		info: Info{
			Path:         path,
			DatabaseType: dbType,
			Schema:       schema,
			Description:  md.Description["en"],
			BuildTime:    md.BuildTime().UTC(),
			IPVersion:    md.IPVersion,
			NodeCount:    md.NodeCount,
			RecordSize:   md.RecordSize,
			Size:         len(b),
		},
		gr: gr,
		mm: mm,
	}
	switch schema {
	case SchemaCountry:
		if err := db.loadRecords(); err != nil {
			return nil, err
		}
	case SchemaCity:
		db.cache = make([]atomic.Pointer[cacheEntry], cityCacheSize)
		// A city database is too large to walk at every open; look one
		// well-known address up so a database with a broken data section
		// still fails here rather than at the first query.
		if _, err := db.decodeAt(mm.Lookup(netip.MustParseAddr("8.8.8.8"))); err != nil {
			return nil, fmt.Errorf("database type %q: %w", dbType, err)
		}
	}
	return db, nil
}

// loadRecords walks every network of a country database and decodes each
// distinct record once. The walk also checks the whole search tree, so a
// corrupt file fails here, at open, and never during a query.
func (db *DB) loadRecords() error {
	db.byOffset = make(map[uintptr]Location)
	cc := make(map[string]struct{})
	located := false
	for res := range db.mm.Networks() {
		if err := res.Err(); err != nil {
			return fmt.Errorf("database type %q: reading networks: %w", db.info.DatabaseType, err)
		}
		off := res.Offset()
		if _, seen := db.byOffset[off]; seen {
			continue
		}
		loc, err := db.decodeAt(res)
		if err != nil {
			return fmt.Errorf("database type %q: network %s: %w", db.info.DatabaseType, res.Prefix(), err)
		}
		db.byOffset[off] = loc
		if loc.Country != "" {
			cc[loc.Country] = struct{}{}
		}
		located = located || loc.Country != "" || loc.Continent != ""
	}
	if len(db.byOffset) > 0 && !located {
		return fmt.Errorf("%w: database type %q but no record has a country or continent", ErrUnsupported, db.info.DatabaseType)
	}
	db.info.Records = len(db.byOffset)
	db.info.Countries = len(cc)
	return nil
}

// record is the part of a GeoIP2 record that Locate uses. Coordinates
// default to NaN so that a missing field can be told from 0°.
type record struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	Continent struct {
		Code string `maxminddb:"code"`
	} `maxminddb:"continent"`
	Location struct {
		Latitude  float64 `maxminddb:"latitude"`
		Longitude float64 `maxminddb:"longitude"`
	} `maxminddb:"location"`
}

// decodeAt decodes the record a lookup found into a Location without
// Network. Missing coordinates are filled from our country, then continent
// tables, so that nearest-region steering works with country-only data.
func (db *DB) decodeAt(res maxminddb.Result) (Location, error) {
	if !res.Found() {
		return Location{}, res.Err()
	}
	var r record
	r.Location.Latitude = math.NaN()
	r.Location.Longitude = math.NaN()
	if err := res.Decode(&r); err != nil {
		return Location{}, err
	}
	loc := Location{
		Country:   strings.ToUpper(r.Country.ISOCode),
		Continent: strings.ToUpper(r.Continent.Code),
	}
	if loc.Continent == "" && loc.Country != "" {
		loc.Continent, _ = CountryContinent(loc.Country)
	}
	lat, lon := r.Location.Latitude, r.Location.Longitude
	switch {
	case validCoords(lat, lon):
		loc.Lat, loc.Lon, loc.HasCoords = lat, lon, true
	case loc.Country != "":
		loc.Lat, loc.Lon, loc.HasCoords = CountryPoint(loc.Country)
	}
	if !loc.HasCoords && loc.Continent != "" {
		loc.Lat, loc.Lon, loc.HasCoords = ContinentPoint(loc.Continent)
	}
	return loc, nil
}

func validCoords(lat, lon float64) bool {
	return lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180 // false for NaN
}

// v4Any is what an IPv4 address is reported to have matched when the
// database network holding it is wider than the IPv4 space itself.
var v4Any = netip.PrefixFrom(netip.IPv4Unspecified(), 0)

// Locate returns where addr is. IPv4-mapped IPv6 addresses are unmapped
// first, so ::ffff:192.0.2.1 and 192.0.2.1 give the same answer. An address
// the database does not cover, an invalid address or a database error all
// give the zero Location; Locate never panics.
//
// For a country database Locate does not allocate: the record was decoded
// at open. For a city database a record is decoded on its first lookup and
// then kept in a bounded cache, where a colliding record may evict it.
func (db *DB) Locate(addr netip.Addr) Location {
	if db == nil || !addr.IsValid() {
		return Location{}
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() && db.info.IPVersion == 4 {
		return Location{}
	}
	res := db.mm.Lookup(addr)
	if !res.Found() {
		return Location{}
	}
	loc, ok := db.lookupRecord(res)
	if !ok {
		return Location{}
	}
	loc.Network = res.Prefix()
	if addr.Is4() && !loc.Network.Addr().Is4() {
		loc.Network = v4Any
	}
	return loc
}

func (db *DB) lookupRecord(res maxminddb.Result) (Location, bool) {
	off := res.Offset()
	if db.byOffset != nil {
		if loc, ok := db.byOffset[off]; ok {
			return loc, true
		}
		// Every record was decoded at open; reaching here means the tree
		// points somewhere the walk did not, so decode it the slow way.
		loc, err := db.decodeAt(res)
		return loc, err == nil
	}
	slot := &db.cache[cacheIndex(off)]
	if e := slot.Load(); e != nil && e.offset == off {
		return e.loc, true
	}
	loc, err := db.decodeAt(res)
	if err != nil {
		return Location{}, false
	}
	slot.Store(&cacheEntry{offset: off, loc: loc})
	return loc, true
}

// cacheIndex spreads data offsets, which are clustered and aligned, over
// the cache slots (Fibonacci hashing).
func cacheIndex(off uintptr) uint64 {
	return (uint64(off) * 0x9E3779B97F4A7C15) >> (64 - cityCacheBits)
}

// Current returns db itself, so that a fixed database stands wherever
// the database a Reloader serves now is asked for.
func (db *DB) Current() *DB {
	return db
}

// Info describes the database.
func (db *DB) Info() Info {
	return db.info
}

// Record returns the full GeoIP2 record for addr as geoip2-golang decodes it
// (names, subdivisions, city...), for operators' tools. It allocates; the
// query path uses Locate.
func (db *DB) Record(addr netip.Addr) (*geoip2.City, error) {
	rec, err := db.gr.City(addr.Unmap().WithZone(""))
	if err != nil {
		return nil, fmt.Errorf("geoip record for %s: %w", addr, err)
	}
	return rec, nil
}
