"""datamill: pipelines."""
