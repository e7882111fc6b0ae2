"""palletd containers."""
