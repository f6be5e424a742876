"""The portal customers and vendors sign in to: server-rendered pages over auth's HTTP API."""
