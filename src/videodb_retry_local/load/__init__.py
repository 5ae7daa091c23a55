"""The load runs: the soak, the outage replay and the sweeper at scale, on the emulated stack."""
