"""datamill: pipelines/stages/filter."""
