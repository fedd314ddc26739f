"""datamill: pipelines/core."""
