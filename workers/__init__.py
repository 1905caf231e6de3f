"""Stream workers (detector, classifier, aggregator) and the bulk analysis jobs."""
