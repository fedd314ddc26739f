"""datamill: pipelines/build."""
