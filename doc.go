// Package gateway is the root of the QuantaSeal gateway for Okta module. It holds no
// code: see cmd/quantaseal for the binary and the README for the package map.
package gateway
