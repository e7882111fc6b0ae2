"""palletd events."""
