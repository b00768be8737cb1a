"""Database layer: typed models, engine/session handling and migrations entry points."""
