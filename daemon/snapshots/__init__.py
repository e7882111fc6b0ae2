"""palletd snapshots."""
