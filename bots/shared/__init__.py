"""Platform-neutral bot code: the gateway client, the submit use case, settings. No chat library here."""
