"""NATS JetStream: the connection and the namespaced topology."""
