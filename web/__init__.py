"""FastAPI app: routers per resource; routes validate, call a service, return a schema."""
