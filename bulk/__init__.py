"""Bulk analysis of videos and photo folders as RQ jobs: planning and staging the inputs, the
jobs and their worker, the results, and the commands `moodstream analyze` and
`moodstream bulk-worker`."""
