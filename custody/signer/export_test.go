package signer

// InternalTransfer exposes internalTransfer to the package's tests.
var InternalTransfer = internalTransfer
