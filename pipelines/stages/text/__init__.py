"""datamill: pipelines/stages/text."""
