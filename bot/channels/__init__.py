"""Channel adapters: wire formats in, channel-neutral replies out."""
