"""pallet CLI and gRPC client library."""
