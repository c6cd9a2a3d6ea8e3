package geo

import "math"

// country is one row of the country table.
type country struct {
	continent string
	name      string
	lat, lon  float64
}

// countries maps every ISO 3166-1 alpha-2 code, plus XK (Kosovo, a
// user-assigned code that MaxMind and DB-IP data use), to its continent,
// English short name and a representative point.
//
// Continents follow the GeoNames convention that MaxMind databases use
// (Russia and Cyprus in EU, Türkiye and the Caucasus in AS, Central America
// and the Caribbean in NA, the sub-Antarctic territories in AN), so a
// continent from our table agrees with one read from a GeoLite2 database.
//
// The point is the capital (seat of government where capital and seat
// differ) or, for territories without one, the main settlement or station.
// For steering, a point within a few hundred kilometres is plenty: it only
// has to rank regions that are usually thousands of kilometres apart.
var countries = map[string]country{
	"AD": {"EU", "Andorra", 42.507, 1.522},
	"AE": {"AS", "United Arab Emirates", 24.453, 54.377},
	"AF": {"AS", "Afghanistan", 34.555, 69.207},
	"AG": {"NA", "Antigua and Barbuda", 17.127, -61.846},
	"AI": {"NA", "Anguilla", 18.217, -63.057},
	"AL": {"EU", "Albania", 41.327, 19.819},
	"AM": {"AS", "Armenia", 40.179, 44.499},
	"AO": {"AF", "Angola", -8.839, 13.289},
	"AQ": {"AN", "Antarctica", -77.846, 166.676},
	"AR": {"SA", "Argentina", -34.604, -58.382},
	"AS": {"OC", "American Samoa", -14.276, -170.702},
	"AT": {"EU", "Austria", 48.208, 16.373},
	"AU": {"OC", "Australia", -35.281, 149.130},
	"AW": {"NA", "Aruba", 12.524, -70.027},
	"AX": {"EU", "Åland Islands", 60.097, 19.935},
	"AZ": {"AS", "Azerbaijan", 40.409, 49.867},
	"BA": {"EU", "Bosnia and Herzegovina", 43.856, 18.413},
	"BB": {"NA", "Barbados", 13.098, -59.618},
	"BD": {"AS", "Bangladesh", 23.811, 90.413},
	"BE": {"EU", "Belgium", 50.850, 4.352},
	"BF": {"AF", "Burkina Faso", 12.371, -1.520},
	"BG": {"EU", "Bulgaria", 42.698, 23.322},
	"BH": {"AS", "Bahrain", 26.229, 50.586},
	"BI": {"AF", "Burundi", -3.427, 29.925},
	"BJ": {"AF", "Benin", 6.497, 2.605},
	"BL": {"NA", "Saint Barthélemy", 17.896, -62.849},
	"BM": {"NA", "Bermuda", 32.295, -64.783},
	"BN": {"AS", "Brunei", 4.903, 114.940},
	"BO": {"SA", "Bolivia", -16.490, -68.119},
	"BQ": {"NA", "Bonaire, Sint Eustatius and Saba", 12.150, -68.268},
	"BR": {"SA", "Brazil", -15.794, -47.882},
	"BS": {"NA", "Bahamas", 25.048, -77.355},
	"BT": {"AS", "Bhutan", 27.472, 89.639},
	"BV": {"AN", "Bouvet Island", -54.423, 3.413},
	"BW": {"AF", "Botswana", -24.628, 25.923},
	"BY": {"EU", "Belarus", 53.904, 27.561},
	"BZ": {"NA", "Belize", 17.251, -88.759},
	"CA": {"NA", "Canada", 45.421, -75.697},
	"CC": {"AS", "Cocos (Keeling) Islands", -12.188, 96.829},
	"CD": {"AF", "Congo (Democratic Republic)", -4.441, 15.266},
	"CF": {"AF", "Central African Republic", 4.394, 18.558},
	"CG": {"AF", "Congo", -4.263, 15.242},
	"CH": {"EU", "Switzerland", 46.948, 7.447},
	"CI": {"AF", "Côte d'Ivoire", 6.827, -5.289},
	"CK": {"OC", "Cook Islands", -21.207, -159.775},
	"CL": {"SA", "Chile", -33.449, -70.669},
	"CM": {"AF", "Cameroon", 3.848, 11.502},
	"CN": {"AS", "China", 39.904, 116.407},
	"CO": {"SA", "Colombia", 4.711, -74.072},
	"CR": {"NA", "Costa Rica", 9.928, -84.091},
	"CU": {"NA", "Cuba", 23.113, -82.366},
	"CV": {"AF", "Cabo Verde", 14.933, -23.513},
	"CW": {"NA", "Curaçao", 12.122, -68.882},
	"CX": {"AS", "Christmas Island", -10.422, 105.679},
	"CY": {"EU", "Cyprus", 35.186, 33.382},
	"CZ": {"EU", "Czechia", 50.075, 14.438},
	"DE": {"EU", "Germany", 52.520, 13.405},
	"DJ": {"AF", "Djibouti", 11.589, 43.145},
	"DK": {"EU", "Denmark", 55.676, 12.568},
	"DM": {"NA", "Dominica", 15.301, -61.388},
	"DO": {"NA", "Dominican Republic", 18.486, -69.931},
	"DZ": {"AF", "Algeria", 36.754, 3.059},
	"EC": {"SA", "Ecuador", -0.180, -78.468},
	"EE": {"EU", "Estonia", 59.437, 24.754},
	"EG": {"AF", "Egypt", 30.044, 31.236},
	"EH": {"AF", "Western Sahara", 27.125, -13.162},
	"ER": {"AF", "Eritrea", 15.322, 38.925},
	"ES": {"EU", "Spain", 40.417, -3.704},
	"ET": {"AF", "Ethiopia", 9.030, 38.740},
	"FI": {"EU", "Finland", 60.170, 24.938},
	"FJ": {"OC", "Fiji", -18.124, 178.450},
	"FK": {"SA", "Falkland Islands", -51.697, -57.852},
	"FM": {"OC", "Micronesia", 6.917, 158.158},
	"FO": {"EU", "Faroe Islands", 62.009, -6.772},
	"FR": {"EU", "France", 48.857, 2.352},
	"GA": {"AF", "Gabon", 0.416, 9.467},
	"GB": {"EU", "United Kingdom", 51.507, -0.128},
	"GD": {"NA", "Grenada", 12.056, -61.749},
	"GE": {"AS", "Georgia", 41.716, 44.783},
	"GF": {"SA", "French Guiana", 4.922, -52.313},
	"GG": {"EU", "Guernsey", 49.455, -2.537},
	"GH": {"AF", "Ghana", 5.604, -0.187},
	"GI": {"EU", "Gibraltar", 36.140, -5.354},
	"GL": {"NA", "Greenland", 64.181, -51.694},
	"GM": {"AF", "Gambia", 13.454, -16.579},
	"GN": {"AF", "Guinea", 9.641, -13.578},
	"GP": {"NA", "Guadeloupe", 15.998, -61.726},
	"GQ": {"AF", "Equatorial Guinea", 3.750, 8.784},
	"GR": {"EU", "Greece", 37.984, 23.728},
	"GS": {"AN", "South Georgia and the South Sandwich Islands", -54.283, -36.494},
	"GT": {"NA", "Guatemala", 14.634, -90.507},
	"GU": {"OC", "Guam", 13.476, 144.749},
	"GW": {"AF", "Guinea-Bissau", 11.864, -15.598},
	"GY": {"SA", "Guyana", 6.801, -58.155},
	"HK": {"AS", "Hong Kong", 22.320, 114.169},
	"HM": {"AN", "Heard Island and McDonald Islands", -53.082, 73.504},
	"HN": {"NA", "Honduras", 14.072, -87.192},
	"HR": {"EU", "Croatia", 45.815, 15.982},
	"HT": {"NA", "Haiti", 18.594, -72.307},
	"HU": {"EU", "Hungary", 47.498, 19.040},
	"ID": {"AS", "Indonesia", -6.209, 106.846},
	"IE": {"EU", "Ireland", 53.350, -6.260},
	"IL": {"AS", "Israel", 32.085, 34.782},
	"IM": {"EU", "Isle of Man", 54.150, -4.481},
	"IN": {"AS", "India", 28.614, 77.209},
	"IO": {"AS", "British Indian Ocean Territory", -7.313, 72.411},
	"IQ": {"AS", "Iraq", 33.315, 44.366},
	"IR": {"AS", "Iran", 35.689, 51.389},
	"IS": {"EU", "Iceland", 64.147, -21.942},
	"IT": {"EU", "Italy", 41.903, 12.496},
	"JE": {"EU", "Jersey", 49.186, -2.107},
	"JM": {"NA", "Jamaica", 17.971, -76.793},
	"JO": {"AS", "Jordan", 31.954, 35.911},
	"JP": {"AS", "Japan", 35.677, 139.650},
	"KE": {"AF", "Kenya", -1.292, 36.822},
	"KG": {"AS", "Kyrgyzstan", 42.875, 74.570},
	"KH": {"AS", "Cambodia", 11.556, 104.928},
	"KI": {"OC", "Kiribati", 1.329, 172.979},
	"KM": {"AF", "Comoros", -11.717, 43.247},
	"KN": {"NA", "Saint Kitts and Nevis", 17.302, -62.717},
	"KP": {"AS", "North Korea", 39.039, 125.763},
	"KR": {"AS", "South Korea", 37.567, 126.978},
	"KW": {"AS", "Kuwait", 29.376, 47.977},
	"KY": {"NA", "Cayman Islands", 19.287, -81.367},
	"KZ": {"AS", "Kazakhstan", 51.160, 71.470},
	"LA": {"AS", "Laos", 17.975, 102.633},
	"LB": {"AS", "Lebanon", 33.894, 35.502},
	"LC": {"NA", "Saint Lucia", 14.010, -60.987},
	"LI": {"EU", "Liechtenstein", 47.141, 9.521},
	"LK": {"AS", "Sri Lanka", 6.893, 79.902},
	"LR": {"AF", "Liberia", 6.301, -10.797},
	"LS": {"AF", "Lesotho", -29.310, 27.478},
	"LT": {"EU", "Lithuania", 54.687, 25.280},
	"LU": {"EU", "Luxembourg", 49.612, 6.130},
	"LV": {"EU", "Latvia", 56.950, 24.105},
	"LY": {"AF", "Libya", 32.887, 13.191},
	"MA": {"AF", "Morocco", 34.020, -6.841},
	"MC": {"EU", "Monaco", 43.738, 7.425},
	"MD": {"EU", "Moldova", 47.011, 28.864},
	"ME": {"EU", "Montenegro", 42.441, 19.263},
	"MF": {"NA", "Saint Martin", 18.068, -63.083},
	"MG": {"AF", "Madagascar", -18.879, 47.508},
	"MH": {"OC", "Marshall Islands", 7.090, 171.380},
	"MK": {"EU", "North Macedonia", 41.998, 21.425},
	"ML": {"AF", "Mali", 12.639, -8.003},
	"MM": {"AS", "Myanmar", 19.763, 96.079},
	"MN": {"AS", "Mongolia", 47.886, 106.906},
	"MO": {"AS", "Macao", 22.199, 113.544},
	"MP": {"OC", "Northern Mariana Islands", 15.177, 145.751},
	"MQ": {"NA", "Martinique", 14.617, -61.059},
	"MR": {"AF", "Mauritania", 18.079, -15.965},
	"MS": {"NA", "Montserrat", 16.792, -62.210},
	"MT": {"EU", "Malta", 35.899, 14.514},
	"MU": {"AF", "Mauritius", -20.161, 57.499},
	"MV": {"AS", "Maldives", 4.175, 73.509},
	"MW": {"AF", "Malawi", -13.963, 33.774},
	"MX": {"NA", "Mexico", 19.433, -99.133},
	"MY": {"AS", "Malaysia", 3.139, 101.687},
	"MZ": {"AF", "Mozambique", -25.969, 32.573},
	"NA": {"AF", "Namibia", -22.560, 17.066},
	"NC": {"OC", "New Caledonia", -22.276, 166.458},
	"NE": {"AF", "Niger", 13.512, 2.113},
	"NF": {"OC", "Norfolk Island", -29.056, 167.959},
	"NG": {"AF", "Nigeria", 9.076, 7.399},
	"NI": {"NA", "Nicaragua", 12.115, -86.236},
	"NL": {"EU", "Netherlands", 52.368, 4.904},
	"NO": {"EU", "Norway", 59.914, 10.752},
	"NP": {"AS", "Nepal", 27.717, 85.324},
	"NR": {"OC", "Nauru", -0.547, 166.921},
	"NU": {"OC", "Niue", -19.055, -169.917},
	"NZ": {"OC", "New Zealand", -41.287, 174.776},
	"OM": {"AS", "Oman", 23.588, 58.383},
	"PA": {"NA", "Panama", 8.983, -79.520},
	"PE": {"SA", "Peru", -12.046, -77.043},
	"PF": {"OC", "French Polynesia", -17.535, -149.570},
	"PG": {"OC", "Papua New Guinea", -9.443, 147.180},
	"PH": {"AS", "Philippines", 14.600, 120.984},
	"PK": {"AS", "Pakistan", 33.684, 73.048},
	"PL": {"EU", "Poland", 52.230, 21.012},
	"PM": {"NA", "Saint Pierre and Miquelon", 46.780, -56.177},
	"PN": {"OC", "Pitcairn", -25.066, -130.101},
	"PR": {"NA", "Puerto Rico", 18.466, -66.106},
	"PS": {"AS", "Palestine", 31.903, 35.204},
	"PT": {"EU", "Portugal", 38.722, -9.139},
	"PW": {"OC", "Palau", 7.500, 134.624},
	"PY": {"SA", "Paraguay", -25.264, -57.576},
	"QA": {"AS", "Qatar", 25.285, 51.531},
	"RE": {"AF", "Réunion", -20.882, 55.450},
	"RO": {"EU", "Romania", 44.427, 26.103},
	"RS": {"EU", "Serbia", 44.787, 20.457},
	"RU": {"EU", "Russia", 55.756, 37.617},
	"RW": {"AF", "Rwanda", -1.944, 30.062},
	"SA": {"AS", "Saudi Arabia", 24.713, 46.675},
	"SB": {"OC", "Solomon Islands", -9.428, 159.950},
	"SC": {"AF", "Seychelles", -4.619, 55.452},
	"SD": {"AF", "Sudan", 15.500, 32.560},
	"SE": {"EU", "Sweden", 59.329, 18.069},
	"SG": {"AS", "Singapore", 1.290, 103.852},
	"SH": {"AF", "Saint Helena, Ascension and Tristan da Cunha", -15.925, -5.718},
	"SI": {"EU", "Slovenia", 46.057, 14.506},
	"SJ": {"EU", "Svalbard and Jan Mayen", 78.223, 15.626},
	"SK": {"EU", "Slovakia", 48.149, 17.107},
	"SL": {"AF", "Sierra Leone", 8.466, -13.234},
	"SM": {"EU", "San Marino", 43.936, 12.447},
	"SN": {"AF", "Senegal", 14.716, -17.467},
	"SO": {"AF", "Somalia", 2.047, 45.318},
	"SR": {"SA", "Suriname", 5.852, -55.204},
	"SS": {"AF", "South Sudan", 4.859, 31.571},
	"ST": {"AF", "Sao Tome and Principe", 0.336, 6.731},
	"SV": {"NA", "El Salvador", 13.692, -89.218},
	"SX": {"NA", "Sint Maarten", 18.026, -63.046},
	"SY": {"AS", "Syria", 33.514, 36.277},
	"SZ": {"AF", "Eswatini", -26.305, 31.136},
	"TC": {"NA", "Turks and Caicos Islands", 21.460, -71.139},
	"TD": {"AF", "Chad", 12.134, 15.056},
	"TF": {"AN", "French Southern Territories", -49.350, 70.220},
	"TG": {"AF", "Togo", 6.131, 1.223},
	"TH": {"AS", "Thailand", 13.756, 100.502},
	"TJ": {"AS", "Tajikistan", 38.560, 68.787},
	"TK": {"OC", "Tokelau", -9.365, -171.215},
	"TL": {"AS", "Timor-Leste", -8.556, 125.560},
	"TM": {"AS", "Turkmenistan", 37.960, 58.326},
	"TN": {"AF", "Tunisia", 36.806, 10.181},
	"TO": {"OC", "Tonga", -21.139, -175.204},
	"TR": {"AS", "Türkiye", 39.933, 32.860},
	"TT": {"NA", "Trinidad and Tobago", 10.660, -61.509},
	"TV": {"OC", "Tuvalu", -8.520, 179.198},
	"TW": {"AS", "Taiwan", 25.033, 121.565},
	"TZ": {"AF", "Tanzania", -6.163, 35.752},
	"UA": {"EU", "Ukraine", 50.450, 30.523},
	"UG": {"AF", "Uganda", 0.348, 32.582},
	"UM": {"OC", "United States Minor Outlying Islands", 19.282, 166.647},
	"US": {"NA", "United States", 38.907, -77.037},
	"UY": {"SA", "Uruguay", -34.901, -56.164},
	"UZ": {"AS", "Uzbekistan", 41.299, 69.240},
	"VA": {"EU", "Holy See", 41.902, 12.453},
	"VC": {"NA", "Saint Vincent and the Grenadines", 13.160, -61.225},
	"VE": {"SA", "Venezuela", 10.481, -66.904},
	"VG": {"NA", "British Virgin Islands", 18.429, -64.620},
	"VI": {"NA", "United States Virgin Islands", 18.342, -64.931},
	"VN": {"AS", "Vietnam", 21.028, 105.834},
	"VU": {"OC", "Vanuatu", -17.734, 168.322},
	"WF": {"OC", "Wallis and Futuna", -13.282, -176.174},
	"WS": {"OC", "Samoa", -13.851, -171.752},
	"XK": {"EU", "Kosovo", 42.663, 21.165},
	"YE": {"AS", "Yemen", 15.369, 44.191},
	"YT": {"AF", "Mayotte", -12.780, 45.228},
	"ZA": {"AF", "South Africa", -25.747, 28.229},
	"ZM": {"AF", "Zambia", -15.387, 28.323},
	"ZW": {"AF", "Zimbabwe", -17.825, 31.034},
}

// continent is one row of the continent table.
type continent struct {
	name     string
	lat, lon float64
}

// continents holds the seven continent codes used by GeoIP2 databases. The
// point is a rough centre of where the continent's people (not its land)
// are, so that a continent-only location ranks regions sensibly.
var continents = map[string]continent{
	"AF": {"Africa", 7.0, 21.0},
	"AN": {"Antarctica", -77.846, 166.676},
	"AS": {"Asia", 28.0, 100.0},
	"EU": {"Europe", 50.0, 10.0},
	"NA": {"North America", 37.0, -95.0},
	"OC": {"Oceania", -27.0, 145.0},
	"SA": {"South America", -15.0, -58.0},
}

// CountryContinent returns the continent code (AF AN AS EU NA OC SA) of an
// ISO 3166-1 alpha-2 country code given in upper case.
func CountryContinent(cc string) (string, bool) {
	c, ok := countries[cc]
	return c.continent, ok
}

// CountryPoint returns a representative point for a country: its capital
// or, for a territory without one, its main settlement.
func CountryPoint(cc string) (lat, lon float64, ok bool) {
	c, ok := countries[cc]
	return c.lat, c.lon, ok
}

// CountryName returns the English short name of a country code.
func CountryName(cc string) (string, bool) {
	c, ok := countries[cc]
	return c.name, ok
}

// ContinentPoint returns a representative point for a continent code.
func ContinentPoint(code string) (lat, lon float64, ok bool) {
	c, ok := continents[code]
	return c.lat, c.lon, ok
}

// ContinentName returns the English name of a continent code.
func ContinentName(code string) (string, bool) {
	c, ok := continents[code]
	return c.name, ok
}

// ValidCountry reports whether cc is an upper-case ISO 3166-1 alpha-2 code
// (or XK) that the table knows.
func ValidCountry(cc string) bool {
	_, ok := countries[cc]
	return ok
}

// ValidContinent reports whether code is one of AF AN AS EU NA OC SA.
func ValidContinent(code string) bool {
	_, ok := continents[code]
	return ok
}

// earthRadiusKm is the mean Earth radius (IUGG).
const earthRadiusKm = 6371.0088

// DistanceKm returns the great-circle distance between two points given in
// degrees, by the haversine formula, which stays accurate for the short
// distances where the spherical law of cosines loses precision.
func DistanceKm(lat1, lon1, lat2, lon2 float64) float64 {
	const rad = math.Pi / 180
	dLat := (lat2 - lat1) * rad
	dLon := (lon2 - lon1) * rad
	s1 := math.Sin(dLat / 2)
	s2 := math.Sin(dLon / 2)
	h := s1*s1 + math.Cos(lat1*rad)*math.Cos(lat2*rad)*s2*s2
	if h > 1 {
		h = 1 // rounding near antipodes
	}
	return 2 * earthRadiusKm * math.Asin(math.Sqrt(h))
}
