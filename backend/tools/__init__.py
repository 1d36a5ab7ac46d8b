"""One module per user-facing job beside training (compare, …); light imports only."""
