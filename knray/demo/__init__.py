"""`knray demo`: the live-chat AI scenario end to end on an embedded Kafka and a local Ray."""
