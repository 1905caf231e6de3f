"""Pure functions over labels: mood windows, valence, driver alerts, shifts, and the people
tracked in a camera's recent frames. No Redis, no I/O."""
