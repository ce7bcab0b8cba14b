"""The configuration files (``providers.yaml``, ``pricing.yaml``, the user's own, ``.env``):
pure loaders that raise ``ConfigError`` naming the file and key, so a bad config fails
at start and never mid-traffic."""
