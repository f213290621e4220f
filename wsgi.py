"""The WSGI entry for any WSGI server: `gunicorn wsgi:app` (settings from the environment)."""

from nurture import create_app

app = create_app()
