"""Composing: the MIME an email is built into, byte for byte what the standard library makes."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.generator import BytesGenerator
from io import BytesIO

from hypothesis import given
from hypothesis import strategies as st

from campaigns.composing import QUICK_FOLD, build_message, sender_from
from campaigns.rendering import RenderedEmail

HEADER_NAMES = st.sampled_from(["Subject", "To", "List-Unsubscribe", "X-Nurture-Message-Id"])


@given(HEADER_NAMES, st.text(max_size=120).filter(lambda value: " " in value or len(value) < 50))
def test_the_quick_fold_writes_headers_as_compat32_does(name, value):
    assert QUICK_FOLD.fold(name, value) == policy.compat32.fold(name, value)


@given(HEADER_NAMES, st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126),
                             min_size=80, max_size=900))
def test_a_long_value_with_nowhere_to_fold_stays_on_its_line(name, value):
    assert QUICK_FOLD.fold(name, value) == f"{name}: {value}\n"


def build(**overrides):
    sender = sender_from("Zoë’s Team <team@example.com>", company="Ëxample", postal_address="1 Straße",
                         base_url="https://nurture.example", provider="sendgrid")
    rendered = RenderedEmail(subject="Grüße, Zoë: a 10 % offer", html="<p>Hallo Zoë = ok</p>",
                             text="Hallo Zoë\n.\nA line that starts with a dot, and one long " * 4)
    values = dict(sender=sender, to_address="zoe@example.com", to_name="Zoë Ärger",
                  rendered=rendered, html=rendered.html, message_id="a" * 32,
                  unsubscribe_url="https://nurture.example/u/" + "t" * 120)
    return build_message(**(values | overrides)), rendered


def test_non_ascii_subject_names_and_bodies_arrive_as_written():
    message, rendered = build()
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert parsed["Subject"] == rendered.subject
    assert parsed["To"].addresses[0].display_name == "Zoë Ärger"
    assert parsed["From"].addresses[0].display_name == "Zoë’s Team"
    text, html = (part.get_content() for part in parsed.iter_parts())
    assert text == rendered.text
    assert html == rendered.html
    assert parsed["List-Unsubscribe"] == "<https://nurture.example/u/" + "t" * 120 + ">"


def test_the_email_reads_the_same_as_compat32_writes_it():
    message, _ = build()
    ours = message_from_bytes(message.as_bytes(), policy=policy.default)
    theirs = message_from_bytes(message.as_bytes(policy=policy.compat32), policy=policy.default)
    assert [(k, v.strip()) for k, v in ours.items()] == [(k, v.strip()) for k, v in theirs.items()]
    assert [p.get_content() for p in ours.iter_parts()] == [
        p.get_content() for p in theirs.iter_parts()]
    assert max(map(len, message.as_bytes().splitlines())) <= 998


def generated(message) -> bytes:
    """What the standard library's generator writes for a message, CRLF line ends."""
    buffer = BytesIO()
    BytesGenerator(buffer, policy=message.policy.clone(linesep="\r\n")).flatten(message)
    return buffer.getvalue()


LINES = st.lists(st.sampled_from(["From here on", "from a friend", ".", "", " ", "\r", "=", "x" * 90,
                                  "Zoë", "tab\there", "From "]), max_size=12)
LINE_ENDS = st.sampled_from(["\n", "\r\n", "\r"])


@given(st.text(max_size=200), st.text(max_size=60), LINES, LINES, LINE_ENDS,
       st.sampled_from(["none", "sendgrid", "mailgun", "postmark", "ses"]))
def test_the_email_writes_itself_for_smtp_as_the_generator_would(
        subject, name, text_lines, html_lines, line_end, provider):
    rendered = RenderedEmail(subject=subject, html=line_end.join(html_lines),
                             text=line_end.join(text_lines))
    sender = sender_from("Team <team@example.com>", company="Example", postal_address="1 Street",
                         base_url="https://nurture.example", provider=provider)
    message, _ = build(rendered=rendered, html=rendered.html, to_name=name or None, sender=sender)
    assert message.smtp_bytes() == generated(message)


def test_an_email_of_another_shape_is_written_by_the_generator():
    message, _ = build()
    message.preamble = "This is a multi-part message in MIME format."
    assert message.smtp_bytes() == generated(message)
    assert message.smtp_bytes().split(b"\r\n\r\n", 1)[1].startswith(b"This is a multi-part")


def test_styles_are_inlined_from_the_email_itself_never_fetched_from_another_site():
    """A marketer's `<link rel=stylesheet>` to a web server: the worker does not fetch it
    (a real server counts the requests), and the email's own `<style>` is inlined."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from campaigns.composing import inline_css

    asked: list[str] = []

    class Styles(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = b"p { color: red; }"
            self.send_response(200)
            self.send_header("Content-Type", "text/css")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Styles)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/remote.css"
        html = inline_css(
            f'<html><head><link rel="stylesheet" href="{url}">'
            "<style>h1 { color: green; }</style></head>"
            "<body><h1>Hello</h1><p>Text</p></body></html>")
    finally:
        server.shutdown()
        server.server_close()
    assert asked == []
    assert '<h1 style="color: green;">' in html
    assert "color: red" not in html


def test_a_runtime_error_names_its_template_and_line():
    """Rendering reuses one dict of variables for the five parts; an expression failing for
    one lead still names the part and the line it failed at (Jinja's rewritten traceback)."""
    import pytest

    from campaigns.rendering import (
        FolderTemplates,
        TemplateProblem,
        make_environment,
        render_email,
        sample_context,
    )

    class Store:
        folder = FolderTemplates()

        def names(self) -> list[str]:
            return ["broken"]

        def source(self, name: str, part: str) -> str | None:
            if name != "broken":
                return self.folder.source(name, part)
            return {"subject.txt": "Hi {{ lead.first_name }}",
                    "body.html": "<p>one</p>\n<p>two</p>\n<p>{{ 1 // (lead.company_size - 250) }}</p>",
                    "body.txt": "Hi"}.get(part)

    env = make_environment(Store())
    with pytest.raises(TemplateProblem) as raised:
        render_email(env, "broken", sample_context())
    assert (raised.value.template, raised.value.line) == ("broken/body.html", 3)
    assert "ZeroDivisionError" in str(raised.value)
    context = sample_context() | {"lead": sample_context()["lead"] | {"company_size": 251}}
    rendered = render_email(env, "broken", context)
    assert "<p>1</p>" in rendered.html and rendered.subject == "Hi Sam"
