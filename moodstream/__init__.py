"""moodstream: the shared core (configuration, stream contract, Redis access, metrics)."""

from moodstream.config import limit_opencv_decoding

__version__ = "0.1.0"

# Every entry point (the CLI, the services, the RQ workers, tests) imports this package
# before any of its modules imports cv2.
limit_opencv_decoding()
