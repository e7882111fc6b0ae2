"""pallet-shim: the per-container supervisor process. Standard library and protobuf only."""
