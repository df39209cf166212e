"""The decision core: events, frames, policy, one record per event. NumPy only."""
