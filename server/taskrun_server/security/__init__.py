"""Who may talk to the server, and over what: TLS credentials and bearer tokens."""
