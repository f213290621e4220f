"""`nurture users create` and `nurture tokens create/list/revoke`."""

from __future__ import annotations

from sqlalchemy import select

from nurture.accounts.services import check_password, hash_token
from nurture.models import ApiToken, Role, User


def test_users_create_stores_a_hashed_password(runner, db):
    result = runner.invoke(
        args=["users", "create", "--email", "Mia@Example.com", "--role", "marketer",
              "--password", "a long enough password", "--timezone", "Europe/Paris"]
    )
    assert result.exit_code == 0, result.output
    with db.session_scope() as session:
        user = session.execute(select(User)).scalar_one()
        assert (user.email, user.role, user.timezone) == ("mia@example.com", Role.MARKETER, "Europe/Paris")
        assert "a long enough password" not in user.password_hash
        assert check_password(session, "MIA@example.com", "a long enough password") is user
        assert check_password(session, "mia@example.com", "wrong password!") is None


def test_users_create_refuses_bad_input_and_duplicates(runner, count):
    ok = ["--email", "a@example.com", "--role", "rep", "--password", "a long enough password"]
    assert runner.invoke(args=["users", "create", *ok]).exit_code == 0
    duplicate = runner.invoke(args=["users", "create", *ok])
    assert duplicate.exit_code == 1 and "exists" in duplicate.output
    short = runner.invoke(args=["users", "create", "--email", "b@example.com", "--role", "rep",
                                "--password", "short"])
    assert short.exit_code == 1 and "at least 12" in short.output
    role = runner.invoke(args=["users", "create", "--email", "c@example.com", "--role", "boss",
                               "--password", "a long enough password"])
    assert role.exit_code == 2
    email = runner.invoke(args=["users", "create", "--email", "nope", "--role", "rep",
                                "--password", "a long enough password"])
    assert email.exit_code == 1
    assert count(User) == 1


def test_tokens_create_prints_the_token_once_and_stores_only_its_hash(runner, db, client):
    result = runner.invoke(args=["tokens", "create", "--name", "salesforce"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[0]
    assert token.startswith("nrt_") and len(token) > 40
    with db.session_scope() as session:
        record = session.execute(select(ApiToken)).scalar_one()
        assert record.token_hash == hash_token(token)
        assert record.role == Role.ADMIN
        assert token not in (record.token_hash, record.prefix)
    response = client.post("/api/v1/leads", json={"email": "a@example.com"},
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201
    listing = runner.invoke(args=["tokens", "list"])
    assert "salesforce" in listing.output and token not in listing.output


def test_tokens_revoke_unknown_is_an_error(runner):
    result = runner.invoke(args=["tokens", "revoke", "42"])
    assert result.exit_code == 1 and "no token" in result.output


def test_a_token_for_a_user_acts_as_that_user(runner, db, client):
    assert runner.invoke(args=["users", "create", "--email", "Rep@Example.com", "--role", "rep",
                               "--password", "correct horse battery"]).exit_code == 0
    result = runner.invoke(args=["tokens", "create", "--name", "rita", "--user",
                                 "rep@example.com"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[0]
    with db.session_scope() as session:
        record = session.execute(select(ApiToken).where(ApiToken.name == "rita")).scalar_one()
        assert record.role == "rep" and record.user_id is not None
    inbox = client.get("/api/v1/handoffs", headers={"Authorization": f"Bearer {token}"})
    assert (inbox.status_code, inbox.json) == (200, {"handoffs": []})
    missing = runner.invoke(args=["tokens", "create", "--name", "x", "--user", "no@example.com"])
    assert missing.exit_code != 0 and "no active user" in missing.output
