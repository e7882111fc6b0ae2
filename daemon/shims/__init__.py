"""palletd shims."""
