"""Alembic environment: runs on the connection that HistoryStore hands over."""

from alembic import context

from moodstream.history.schema import metadata

VERSION_TABLE = "history_version"

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  version_table=VERSION_TABLE, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
