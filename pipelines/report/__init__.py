"""datamill: pipelines/report."""
