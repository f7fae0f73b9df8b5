"""ach_nacha simulator (work in progress)."""
