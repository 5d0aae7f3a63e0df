"""Applications built on fastws, each with its README and its tests under tests/examples/."""
