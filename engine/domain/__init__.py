"""Pure logic: plain functions over dataclasses, no database and no network."""
