"""instant_rtp simulator (work in progress)."""
