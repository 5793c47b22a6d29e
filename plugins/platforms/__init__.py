"""Built-in hardware platforms (the CPU); vendors ship theirs as separate packages."""
