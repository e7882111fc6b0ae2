"""palletd's image builder: Dockerfiles and contexts into images (docker's classic builder)."""
