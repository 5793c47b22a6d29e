"""Built-in attention backends: the plain-torch reference every faster backend is checked against."""
