"""Finding and labelling faces: the detectors, `FaceDetector` with crops and alignment,
gating and track-guided detection, the emotion model runtime and label reuse. Used by the
live detector and classifier, the edge node, the bulk jobs, the model tools and the bench."""
