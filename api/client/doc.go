// Package client is a Go client of Meridian's HTTP API, for programs that
// script Meridian: every route of the API as a method that takes a
// context and returns the API's own types (api/apitypes), so a client
// built against this module decodes exactly what the server encodes.
//
//	c, err := client.New("http://127.0.0.1:8053", client.WithToken(token))
//	st, err := c.Status(ctx)
//	ch, err := c.SetWeights(ctx, "api.gslb.example", map[string]uint32{"eu-west": 70}, client.DryRun())
//
// Writes take options: DryRun (validate and say what would change),
// Force (make a write that leaves a service answering NODATA), and the
// preconditions IfMatch or IfRevision (the object's ETag), IfExists and
// CreateOnly. A refused request is an *Error carrying the API's RFC 9457
// problem document (status, title, detail, the invalid fields, and the
// services a write would leave answering NODATA); StatusCode reads its
// status. A response that cannot be decoded is an error too.
//
// client imports api/apitypes, regions and the standard library only;
// using it links no etcd code.
package client
