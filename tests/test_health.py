def test_healthz_answers_while_the_process_lives(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_is_200_when_database_and_redis_answer(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.json
    assert response.json["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_is_503_when_redis_does_not_answer(service_env):
    from nurture import create_app

    app = create_app({**service_env, "REDIS_URL": "redis://127.0.0.1:1/0"})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["database"] == "ok"
    assert response.json["checks"]["redis"].startswith("error")


def test_readyz_is_503_when_the_database_does_not_answer(service_env):
    from nurture import create_app

    app = create_app(
        {**service_env, "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    )
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["database"].startswith("error")
    assert response.json["checks"]["redis"] == "ok"


def test_wsgi_module_builds_the_app_from_the_environment(service_env):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = (
        "import wsgi\n"
        "client = wsgi.app.test_client()\n"
        "print(wsgi.app.name, client.get('/healthz').status_code, client.get('/readyz').status_code)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                            text=True, timeout=120, env={**os.environ, **service_env})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["nurture", "200", "200"]
    bad = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=root, capture_output=True,
                         text=True, timeout=120,
                         env={**os.environ, **service_env, "DATABASE_URL": "mysql://x"})
    assert bad.returncode != 0 and "DATABASE_URL" in bad.stderr
