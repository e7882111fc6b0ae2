"""palletd store."""
