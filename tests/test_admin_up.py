"""`nurture up` on an empty database: the printed address opens the admin's sign-in page and
the printed demo accounts sign in (over HTTP, as a browser would: cookie, CSRF token)."""

from __future__ import annotations

import http.cookiejar
import re
import signal
import urllib.parse
import urllib.request

from tests.test_processes import (
    STOP_TIMEOUT_S,
    clean_env,
    free_port,
    nurture,  # noqa: F401  # the fixture that starts `nurture up`
)


def test_up_prints_the_sign_in_address_and_the_demo_accounts_sign_in(nurture, tmp_path):  # noqa: F811
    port = free_port()
    up = nurture("up", "--port", str(port), "--demo-leads", "20",
                 env=clean_env(NURTURE_INSTANCE_PATH=str(tmp_path / "instance")))
    url = up.wait_for(r"Nurture is up at (http://127\.0\.0\.1:\d+)", timeout=180)[1]
    sign_in_url = up.wait_for(r"Sign in to the admin at (\S+)")[1]
    assert sign_in_url == f"{url}/auth/sign-in"
    accounts = {m[1]: m[2] for m in (
        up.wait_for(rf"^\s+{role}\s+(\S+)\s+(\S+)") for role in ("marketer", "sales_approver"))}
    assert len(accounts) == 2

    for email, password in accounts.items():
        browser = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        with browser.open(f"{url}/", timeout=10) as page:  # the printed address itself
            assert page.url == sign_in_url
            html = page.read().decode()
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)[1]
        form = urllib.parse.urlencode({"csrf_token": token, "email": email,
                                       "password": password, "next": ""}).encode()
        with browser.open(sign_in_url, form, timeout=10) as page:
            assert page.url == f"{url}/admin/", email
            assert "Leads that entered nurture" in page.read().decode()

    assert up.stop(signal.SIGTERM) < STOP_TIMEOUT_S * 2
