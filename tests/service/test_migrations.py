from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from persistence.models import Base


def test_migrations_build_exactly_the_models_schema(database):
    with database.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        assert context.get_current_revision() is not None
