"""pubsock: Bun's WebSocket server model for Python."""
