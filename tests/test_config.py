"""Settings are read once, validated, and a malformed one is named in one line."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from nurture.config import SettingsError, instance_secret_key, load_settings, with_secret_key


def _der(key) -> str:
    return base64.b64encode(
        key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    ).decode()


def test_defaults_are_the_embedded_ones(tmp_path):
    settings = load_settings({"NURTURE_INSTANCE_PATH": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'nurture.db'}"
    assert settings.redis_url is None
    assert settings.base_url == "http://127.0.0.1:8000"
    assert settings.mail_from == "Nurture <nurture@localhost>"
    assert settings.smtp_url is None
    assert settings.ses_sns_topic_arns == ()


def test_plain_postgresql_urls_mean_psycopg_3():
    settings = load_settings({"DATABASE_URL": "postgresql://u:p@db:5432/nurture"})
    assert settings.database_url == "postgresql+psycopg://u:p@db:5432/nurture"


def test_a_full_valid_environment_is_accepted(tmp_path):
    settings = load_settings({
        "DATABASE_URL": "postgresql+psycopg://u@h/d",
        "REDIS_URL": "redis://127.0.0.1:6379/2",
        "NURTURE_BASE_URL": "https://nurture.example.com/",
        "SMTP_URL": "smtp+starttls://user:pass@mail.example.com:587",
        "MAIL_FROM": "Acme Marketing <hello@acme.example>",
        "CRM_WEBHOOK_URL": "https://crm.example.com/hooks/nurture",
        "CRM_WEBHOOK_SECRET": "s3cret",
        "SENDGRID_WEBHOOK_PUBLIC_KEY": _der(ec.generate_private_key(ec.SECP256R1())),
        "MAILGUN_WEBHOOK_SIGNING_KEY": "key-abc",
        "POSTMARK_WEBHOOK_USERNAME": "pm",
        "POSTMARK_WEBHOOK_PASSWORD": "pw",
        "SES_SNS_TOPIC_ARNS": "arn:aws:sns:eu-west-1:123456789012:ses-events, arn:aws:sns:us-east-1:123456789012:b",
        "SES_SNS_CERTIFICATES": str(tmp_path),
    })
    assert settings.base_url == "https://nurture.example.com"
    assert len(settings.ses_sns_topic_arns) == 2
    assert settings.ses_sns_certificates == tmp_path


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://root@localhost/db"),
        ("DATABASE_URL", "not a url"),
        ("DATABASE_URL", "postgresql+asyncpg://u@h/d"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("REDIS_URL", "redis://127.0.0.1:notaport"),
        ("NURTURE_BASE_URL", "ftp://example.com"),
        ("NURTURE_BASE_URL", "example.com"),
        ("SMTP_URL", "smtp2://mail"),
        ("MAIL_FROM", "Nurture"),
        ("CRM_WEBHOOK_URL", "crm.example.com/hook"),
        ("SENDGRID_WEBHOOK_PUBLIC_KEY", "not base64!"),
        ("SENDGRID_WEBHOOK_PUBLIC_KEY", base64.b64encode(b"garbage").decode()),
        ("SES_SNS_TOPIC_ARNS", "arn:aws:sqs:eu-west-1:123456789012:q"),
        ("SES_SNS_CERTIFICATES", "/no/such/directory"),
        ("NURTURE_SMTP_CONNECTIONS", "0"),
        ("NURTURE_SMTP_CONNECTIONS", "33"),
        ("NURTURE_SMTP_CONNECTIONS", "four"),
    ],
)
def test_a_malformed_setting_is_named(name, value):
    with pytest.raises(SettingsError) as caught:
        load_settings({name: value})
    assert caught.value.name == name
    assert str(caught.value).startswith(f"{name}: ")
    assert "\n" not in str(caught.value)


def test_sendgrid_key_must_be_p256():
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(SettingsError, match="P-256"):
        load_settings({"SENDGRID_WEBHOOK_PUBLIC_KEY": _der(rsa_key)})
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(SettingsError, match="P-256"):
        load_settings({"SENDGRID_WEBHOOK_PUBLIC_KEY": _der(p384)})


def test_settings_that_go_in_pairs():
    with pytest.raises(SettingsError) as caught:
        load_settings({"CRM_WEBHOOK_URL": "https://crm.example.com/h"})
    assert caught.value.name == "CRM_WEBHOOK_SECRET"
    with pytest.raises(SettingsError) as caught:
        load_settings({"POSTMARK_WEBHOOK_USERNAME": "u"})
    assert caught.value.name == "POSTMARK_WEBHOOK_PASSWORD"


def test_secret_key_is_generated_once_per_instance_and_kept(tmp_path):
    first = with_secret_key(load_settings({"NURTURE_INSTANCE_PATH": str(tmp_path)}))
    second = with_secret_key(load_settings({"NURTURE_INSTANCE_PATH": str(tmp_path)}))
    assert len(first.secret_key) == 64
    assert first.secret_key == second.secret_key
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0  # readable by the owner only
    explicit = with_secret_key(load_settings({"SECRET_KEY": "x" * 40, "NURTURE_INSTANCE_PATH": str(tmp_path)}))
    assert explicit.secret_key == "x" * 40


def test_processes_starting_together_share_one_secret_key(tmp_path):
    code = (
        "import sys; from pathlib import Path; from nurture.config import instance_secret_key;"
        "print(instance_secret_key(Path(sys.argv[1])))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    keys = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(keys) == 1
    assert keys == {instance_secret_key(tmp_path)}


def test_settings_are_not_read_at_import_time(tmp_path):
    env = {**os.environ, "DATABASE_URL": "mysql://nope"}
    result = subprocess.run(
        [sys.executable, "-c", "import nurture, nurture.web.api, nurture.cli, workers"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_cli_names_a_malformed_setting_in_one_line(tmp_path):
    env = {**os.environ, "DATABASE_URL": "mysql://root@localhost/db",
           "NURTURE_INSTANCE_PATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "nurture", "db", "upgrade"],
        env=env, capture_output=True, text=True, timeout=60, cwd=Path(tmp_path),
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "Error: invalid setting DATABASE_URL: unsupported database 'mysql'; "
        "use sqlite:/// or postgresql+psycopg://"
    ]
