// Package wellknown is the vocabulary the h3m origin and its clients share:
// the well-known document at /.well-known/h3m that describes the origin's
// multicast sessions, its catalogue of recently pushed resources and its
// published signature keys (spec/unicast.md), the paths under it, and the
// limits both sides apply.
//
// The origin (package unicast/origin) writes the document; clients (package
// unicast/client) read it with Parse, which checks every member, because
// it comes from the network.
package wellknown
