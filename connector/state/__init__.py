"""What survives a restart: the checkpoint file, the change store, acked progress and the state directory."""
