"""palletd images."""
