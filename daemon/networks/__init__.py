"""palletd networks: bridges, veth pairs, address leases, published ports, embedded DNS."""
