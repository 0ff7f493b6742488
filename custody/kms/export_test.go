package kms

// EthereumSignature exposes ethereumSignature to the tests.
var EthereumSignature = ethereumSignature
