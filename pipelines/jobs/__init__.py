"""datamill: pipelines/jobs."""
