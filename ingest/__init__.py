"""Ingest service: reads one camera source and publishes sampled JPEG frames to Redis."""
