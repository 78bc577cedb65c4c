"""Alembic environment of the registry: run programmatically by ``deployable.registry._migrate`` on the connection
it is given (``config.attributes["connection"]``); there is no alembic.ini."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
