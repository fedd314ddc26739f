"""datamill: pipelines/stages/dedup."""
