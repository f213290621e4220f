"""The migrations build exactly the models' schema, on SQLite and PostgreSQL, with one head."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from nurture.migrate import alembic_config, heads, upgrade_database
from nurture.models import Base


def test_there_is_exactly_one_alembic_head():
    assert len(heads()) == 1


def test_migrated_database_matches_the_models(db):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_check_and_unique_constraints_match_the_models(db):
    """Autogenerate does not compare CHECK constraints; compare their names directly."""
    inspector = inspect(db.engine)
    for table in Base.metadata.sorted_tables:
        expected_checks = {
            c.name for c in table.constraints if c.__class__.__name__ == "CheckConstraint"
        }
        actual_checks = {c["name"] for c in inspector.get_check_constraints(table.name)}
        assert actual_checks == expected_checks, table.name
        expected_uniques = {
            c.name for c in table.constraints if c.__class__.__name__ == "UniqueConstraint"
        }
        actual_uniques = {c["name"] for c in inspector.get_unique_constraints(table.name)}
        assert actual_uniques == expected_uniques, table.name


def test_upgrade_is_idempotent_and_downgrade_reverses_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade_database(url)
    upgrade_database(url)  # nothing to do the second time
    command.downgrade(alembic_config(url), "base")
    from nurture.db import make_engine

    engine = make_engine(url)
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    upgrade_database(url)
    assert set(inspect(engine).get_table_names()) >= {t.name for t in Base.metadata.sorted_tables}
    engine.dispose()


def test_db_upgrade_command(runner):
    result = runner.invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "head" in result.output
