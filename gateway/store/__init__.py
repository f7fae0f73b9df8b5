"""Persistence: SQLAlchemy Core tables, engine, repositories."""
