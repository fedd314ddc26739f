"""datamill: pipelines/io."""
