"""Web frontends: each a folder like a service, speaking to the services only over HTTP
(and, for the admin console, the command contracts in shared/); none imports services.*."""
