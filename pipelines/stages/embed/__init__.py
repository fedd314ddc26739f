"""datamill: pipelines/stages/embed."""
