"""Who produces labels: AI annotators (transformers / spaCy adapters implementing engine.ports)
and, later, bridges to human annotators outside the web app. Adapters load lazily, never at import."""
