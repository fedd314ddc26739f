"""datamill: synth."""
