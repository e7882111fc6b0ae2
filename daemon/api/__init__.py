"""palletd api."""
