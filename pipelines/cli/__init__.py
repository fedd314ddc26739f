"""datamill: pipelines/cli."""
