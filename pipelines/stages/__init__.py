"""datamill: pipelines/stages."""
