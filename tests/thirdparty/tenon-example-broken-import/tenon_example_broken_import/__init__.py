"""An example Tenon plugin package whose plugin module cannot be imported."""
