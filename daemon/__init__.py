"""palletd: the pallet daemon (see ../shared/DESIGN.md for the picture)."""
