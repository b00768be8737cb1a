"""Repositories: queries and writes per aggregate. They flush, never commit."""
