"""`moodstream edge`: ingest, detection and classification beside the camera; only labels
travel to the central Redis."""
