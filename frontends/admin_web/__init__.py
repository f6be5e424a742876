"""The admin console on the web: the CLI's commands over Kafka, its reads over HTTP."""
