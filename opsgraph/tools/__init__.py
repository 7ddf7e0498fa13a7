"""Everything that touches infrastructure: inventory, probes, the tool catalogue, environments."""
