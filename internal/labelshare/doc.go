// Package labelshare makes the Prometheus series of the families with a
// series per service (and per service and region) share their label
// pairs. A scrape gathers every series into memory before it writes the
// first byte; with const metrics each series carries its own copy of
// its labels, which at 10,000 services made a scrape hold tens of
// megabytes at once. Here a service's label pair is made once per scrape
// and every series of the service points at it, and gauges of equal
// value point at one value (Gauges); the client library treats a
// written metric as read-only.
//
// labelshare imports the standard library and the Prometheus client
// libraries only.
package labelshare
