"""The sequence builder (nurture/web/admin/sequences.py, sequence_pages.py, sequence_forms.py):
the same documents, validator, versions and activation as the API, through forms."""

from __future__ import annotations

import copy
import re
from typing import Any

import lxml.html
import pytest
import yaml
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from nurture.models import Role, Sequence, SequenceVersion
from tests.conftest import Api
from tests.test_api_sequences import make_collateral
from tests.test_auth import make_user, sign_in

TWO_STAGES: dict[str, Any] = {
    "key": "timing", "name": "Bad timing", "priority": 10,
    "entry": {"reasons": ["bad_timing"]},
    "stages": [
        {"key": "warm", "name": "Warm up", "steps": [
            {"type": "email", "id": "hello", "template": "check-in",
             "collateral": ["planning-guide"]},
            {"type": "wait", "id": "pause", "duration": "P2D"},
            {"type": "branch", "id": "clicked",
             "condition": {"engaged": "click", "step": "hello", "within": "P2D"},
             "then": "proof"},
        ]},
        {"key": "prove", "name": "Prove", "steps": [
            {"type": "email", "id": "check", "template": "check-in"},
            {"type": "email", "id": "proof", "template": "case-study"},
            {"type": "exit", "id": "done"},
        ]},
    ],
}


@pytest.fixture()
def marketer(client, db):
    make_user(db)
    sign_in(client)
    return client


@pytest.fixture()
def api_marketer(client, make_token):
    return Api(client, make_token(Role.MARKETER, "m"))


def imported(api_marketer, document=TWO_STAGES, *, activate=False) -> int:
    answer = api_marketer.post("/api/v1/sequences", json=document)
    assert answer.status_code in (200, 201), answer.json
    if activate:
        assert api_marketer.post(f"/api/v1/sequences/{answer.json['id']}/activate").status_code == 200
    return answer.json["id"]


def form_of(html: str, form_id: str = "builder") -> list[tuple[str, str]]:
    """What the browser would post for the form (no submit button)."""
    document = lxml.html.document_fromstring(html)
    form = document.get_element_by_id(form_id)
    return [(k, v) for k, v in form.form_values()]


def builder_form(client, url: str) -> list[tuple[str, str]]:
    page = client.get(url)
    assert page.status_code == 200, page.text
    return form_of(page.text)


def changed(fields: list[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    assert any(k == name for k, _ in fields), name
    return [(k, value if k == name else v) for k, v in fields]


def post(client, url, fields, op="save"):
    return client.post(url, data=MultiDict([*fields, ("op", op)]))


def versions(db, sequence_id) -> int:
    with db.session_scope() as session:
        return session.execute(select(func.count()).select_from(SequenceVersion)
                               .where(SequenceVersion.sequence_id == sequence_id)).scalar_one()


def field_errors(html: str, name: str) -> str:
    document = lxml.html.document_fromstring(html)
    found = document.xpath(f'//*[@data-errors-for="{name}"]')
    assert found, f"no place for errors of {name}"
    return found[0].text_content()


def test_the_builder_shows_stages_as_columns_and_steps_as_cards_in_order(marketer, db,
                                                                         api_marketer):
    make_collateral(db)
    sequence_id = imported(api_marketer)
    page = marketer.get(f"/admin/sequences/{sequence_id}")
    assert page.status_code == 200
    html = lxml.html.document_fromstring(page.text)
    stages = html.xpath('//section[contains(@class, "stage")]')
    assert [s.xpath('.//input[contains(@name, "].name")]/@value')[0] for s in stages] == [
        "Warm up", "Prove"]
    cards = [c.get("id") for c in html.xpath('//li[contains(@class, "card")]')]
    assert cards == ["step-hello", "step-pause", "step-clicked", "step-check", "step-proof",
                     "step-done"]
    # each type its own fields, named by the validator's paths
    names = {n for n in html.xpath("//form[@id='builder']//@name")}
    for name in ("stages[0].steps[0].email.template", "stages[0].steps[0].email.subject",
                 "stages[0].steps[0].email.collateral", "stages[0].steps[1].wait.duration",
                 "stages[0].steps[1].wait.until.weekday", "stages[0].steps[2].branch.condition.step",
                 "stages[0].steps[2].branch.condition.engaged",
                 "stages[0].steps[2].branch.condition.within", "stages[0].steps[2].branch.then",
                 "stages[0].steps[2].branch.else", "stages[1].steps[2].exit.reason"):
        assert name in names, name
    # both paths of the branch visible: yes to `proof`, no to the next step
    branch = html.get_element_by_id("step-clicked")
    assert "Yes" in branch.text_content() and "No" in branch.text_content()
    assert branch.xpath('.//select[@name="stages[0].steps[2].branch.then"]/option[@selected]/@value') == ["proof"]
    assert "the next step (check)" in branch.text_content()


def test_saving_the_unchanged_form_changes_nothing(marketer, db, api_marketer):
    make_collateral(db)
    sequence_id = imported(api_marketer)
    url = f"/admin/sequences/{sequence_id}"
    answer = post(marketer, url, builder_form(marketer, url))
    assert answer.status_code == 302
    assert versions(db, sequence_id) == 1
    assert "Nothing changed" in marketer.get(url).text


def test_sequence_pages_are_for_marketers_and_admins(client, db, api_marketer):
    make_collateral(db)
    sequence_id = imported(api_marketer)
    pages = [f"/admin/sequences/{sequence_id}", "/admin/sequences/new",
             f"/admin/sequences/{sequence_id}/versions", f"/admin/sequences/{sequence_id}/yaml",
             f"/admin/sequences/{sequence_id}/yaml/download", "/admin/sequences/import",
             f"/admin/sequences/{sequence_id}/steps/hello/preview",
             f"/admin/sequences/{sequence_id}/steps/hello/preview/email.html"]
    for path in pages:  # anonymous: to sign-in
        answer = client.get(path)
        assert answer.status_code == 302 and "/auth/sign-in" in answer.headers["Location"], path
    make_user(db, email="sam@example.com", role=Role.SALES_APPROVER)
    sign_in(client, "sam@example.com")
    for path in pages:
        assert client.get(path).status_code == 403, path
    for path in (f"/admin/sequences/{sequence_id}/activate", "/admin/sequences/validate"):
        assert client.post(path).status_code in (400, 403), path  # no token, wrong role
    make_user(db, email="root@example.com", role=Role.ADMIN)
    client.post("/auth/sign-out", data={"csrf_token": "x"})
    client.delete_cookie("nurture_session")
    sign_in(client, "root@example.com")
    for path in pages:
        assert client.get(path).status_code == 200, path


def test_a_post_without_the_csrf_token_is_400_and_changes_nothing(marketer, db, api_marketer):
    make_collateral(db)
    sequence_id = imported(api_marketer)
    url = f"/admin/sequences/{sequence_id}"
    fields = [(k, v) for k, v in builder_form(marketer, url) if k != "csrf_token"]
    fields = changed(fields, "name", "Renamed without a token")
    assert post(marketer, url, fields).status_code == 400
    for path in (f"{url}/activate", f"{url}/pause", f"{url}/yaml",
                 f"{url}/steps/hello/test-send", "/admin/sequences/import",
                 "/admin/sequences/validate", "/admin/sequences/new"):
        assert marketer.post(path, data={"document": "key: x"}).status_code == 400, path
    assert versions(db, sequence_id) == 1
    with db.session_scope() as session:
        sequence = session.get(Sequence, sequence_id)
        assert (sequence.name, sequence.status.value) == ("Bad timing", "draft")


def test_a_new_sequence_is_built_and_saved_as_version_one(marketer, db):
    make_collateral(db)
    fields = builder_form(marketer, "/admin/sequences/new")
    fields = changed(fields, "key", "fresh")
    fields = changed(fields, "name", "A fresh start")
    fields.append(("entry.reasons", "no_budget"))
    fields.append(("stages[0].steps[0].email.collateral", "planning-guide"))
    answer = post(marketer, "/admin/sequences/new", fields)
    assert answer.status_code == 302, answer.text
    with db.session_scope() as session:
        sequence = session.query(Sequence).filter_by(key="fresh").one()
        version = session.query(SequenceVersion).filter_by(sequence_id=sequence.id).one()
        assert version.created_by == "mara@example.com"
        assert version.document["stages"][0]["steps"][0]["collateral"] == ["planning-guide"]
        assert answer.headers["Location"] == f"/admin/sequences/{sequence.id}"


def test_bad_input_is_shown_on_its_field_with_the_apis_path_and_nothing_is_saved(
        marketer, db, api_marketer):
    make_collateral(db)
    sequence_id = imported(api_marketer)
    url = f"/admin/sequences/{sequence_id}"
    fields = changed(builder_form(marketer, url), "stages[0].steps[1].wait.duration", "3 days")
    fields = changed(fields, "stages[0].steps[2].branch.then", "hello")  # a loop
    fields = changed(fields, "name", "Still bad timing")
    answer = post(marketer, url, fields)
    assert answer.status_code == 422
    duration = field_errors(answer.text, "stages[0].steps[1].wait.duration")
    assert "stages[0].steps[1].wait.duration" in duration and "ISO 8601" in duration
    # the API names the same path for the same document
    api = api_marketer.post("/api/v1/sequences", json={
        **TWO_STAGES, "stages": [{**TWO_STAGES["stages"][0], "steps": [
            TWO_STAGES["stages"][0]["steps"][0],
            {"type": "wait", "id": "pause", "duration": "3 days"},
            TWO_STAGES["stages"][0]["steps"][2]]}, TWO_STAGES["stages"][1]]})
    assert "stages[0].steps[1].wait.duration" in api.json["errors"]
    # what was typed is kept
    page = lxml.html.document_fromstring(answer.text)
    assert page.xpath('//input[@name="name"]/@value') == ["Still bad timing"]
    assert page.xpath('//input[@name="stages[0].steps[1].wait.duration"]/@value') == ["3 days"]
    assert versions(db, sequence_id) == 1


def test_structure_errors_land_on_the_branch_fields(marketer, db, api_marketer):
    make_collateral(db)
    sequence_id = imported(api_marketer)
    url = f"/admin/sequences/{sequence_id}"
    fields = changed(builder_form(marketer, url), "stages[0].steps[2].branch.then", "hello")
    answer = post(marketer, url, fields)
    assert "is not after this branch" in field_errors(answer.text,
                                                      "stages[0].steps[2].branch.then")
    assert versions(db, sequence_id) == 1


def test_live_validation_answers_errors_placed_on_fields(marketer, db, api_marketer):
    make_collateral(db)
    sequence_id = imported(api_marketer)
    url = f"/admin/sequences/{sequence_id}"
    fields = builder_form(marketer, url)
    token = dict(fields)["csrf_token"]
    good = marketer.post("/admin/sequences/validate", data=MultiDict(fields),
                         headers={"X-CSRFToken": token})
    assert good.status_code == 200 and good.json == {"errors": {}, "count": 0}
    bad = changed(fields, "stages[0].steps[0].email.collateral", "no-such-thing")
    bad = changed(bad, "stages[1].key", "warm")  # twice
    answer = marketer.post("/admin/sequences/validate", data=MultiDict(bad),
                           headers={"X-CSRFToken": token})
    errors = answer.json["errors"]
    assert errors["stages[0].steps[0].email.collateral"] == [
        {"path": "stages[0].steps[0].email.collateral[0]", "message": "no collateral 'no-such-thing'"}]
    assert errors["stages[1].key"][0]["path"] == "stages[1].key"
    assert answer.json["count"] == 2
    without_token = [(k, v) for k, v in bad if k != "csrf_token"]
    assert marketer.post("/admin/sequences/validate",
                         data=MultiDict(without_token)).status_code == 400
    assert versions(db, sequence_id) == 1


def test_step_operations_change_the_draft_not_the_stored_version(marketer, db, api_marketer):
    make_collateral(db)
    sequence_id = imported(api_marketer)
    url = f"/admin/sequences/{sequence_id}"

    def ids(html):
        return [c.get("id") for c in lxml.html.document_fromstring(html).xpath(
            '//li[contains(@class, "card")]')]

    fields = builder_form(marketer, url)
    moved = post(marketer, url, fields, op="step-down:0:0")  # hello below pause
    assert moved.status_code == 200
    assert ids(moved.text)[:2] == ["step-pause", "step-hello"]
    focused = lxml.html.document_fromstring(moved.text).xpath("//*[@autofocus]")
    assert [b.get("value") for b in focused] == ["step-down:0:1"]  # the moved step's button
    across = post(marketer, url, form_of(moved.text), op="step-down:0:2")  # to stage 2
    assert ids(across.text)[2:4] == ["step-clicked", "step-check"]
    assert lxml.html.document_fromstring(across.text).xpath(
        '//ol[@data-steps="1"]/li[1]/@id') == ["step-clicked"]
    duplicated = post(marketer, url, form_of(across.text), op="step-duplicate:1:1")
    assert "step-check-copy" in ids(duplicated.text)
    removed = post(marketer, url, form_of(duplicated.text), op="step-remove:1:2")
    assert "step-check-copy" not in ids(removed.text)
    fields = changed(form_of(removed.text), "stages[1].add", "wait")
    added = post(marketer, url, fields, op="step-add:1")
    assert lxml.html.document_fromstring(added.text).xpath(
        '//ol[@data-steps="1"]/li[last()]/@class')[0].startswith("card card-wait")
    staged = post(marketer, url, form_of(added.text), op="stage-add")
    assert len(lxml.html.document_fromstring(staged.text).xpath(
        '//section[contains(@class, "stage")]')) == 3
    assert versions(db, sequence_id) == 1  # nothing saved by any of these


def test_editing_an_active_sequence_makes_a_new_version_and_leaves_enrolled_leads(
        marketer, db, api_marketer, api):
    from nurture.models import Enrollment

    make_collateral(db)
    sequence_id = imported(api_marketer, activate=True)
    answer = api.post("/api/v1/rejections", json={
        "lead": {"email": "vera@example.com"}, "rep_email": "rita@example.com",
        "reason": "bad_timing"})
    assert answer.json["enrollment"]["sequence_id"] == sequence_id
    url = f"/admin/sequences/{sequence_id}"
    fields = changed(builder_form(marketer, url), "stages[0].steps[1].wait.duration", "P4D")
    saved = post(marketer, url, fields)
    assert saved.status_code == 302
    page = marketer.get(url).text
    assert "Saved as version 2" in page and "Leads already enrolled stay on" in page
    assert "version 1 is live" in page and "Activate version 2" in page
    with db.session_scope() as session:
        sequence = session.get(Sequence, sequence_id)
        live = session.get(SequenceVersion, sequence.active_version_id)
        assert live.version == 1 and sequence.status.value == "active"
        enrollment = session.query(Enrollment).one()
        assert session.get(SequenceVersion, enrollment.version_id).version == 1
    assert marketer.post(f"{url}/activate", data={"csrf_token": dict(fields)["csrf_token"]}
                         ).status_code == 302
    with db.session_scope() as session:
        sequence = session.get(Sequence, sequence_id)
        assert session.get(SequenceVersion, sequence.active_version_id).version == 2
        enrollment = session.query(Enrollment).one()
        assert session.get(SequenceVersion, enrollment.version_id).version == 1  # stays
    versions_page = marketer.get(f"{url}/versions").text
    rows = re.findall(r"<tr>(.*?)</tr>", versions_page, re.S)
    assert "v2" in rows[1] and "live" in rows[1]
    assert re.findall(r'<td class="num">([^<]+)</td>', rows[2]) == ["1", "1"]  # v1 keeps vera


def test_a_refused_activation_names_the_offending_step(marketer, db, api_marketer):
    make_collateral(db, ("planning-guide",), approve=False)
    sequence_id = imported(api_marketer)
    url = f"/admin/sequences/{sequence_id}"
    token = dict(builder_form(marketer, url))["csrf_token"]
    answer = marketer.post(f"{url}/activate", data={"csrf_token": token})
    assert answer.status_code == 302
    page = marketer.get(url).text
    assert "Not activated" in page
    card = lxml.html.document_fromstring(page).get_element_by_id("step-hello")
    problem = card.xpath('.//*[contains(@class, "card-problem")]')[0].text_content()
    assert "planning-guide" in problem and "not approved by sales" in problem
    assert not lxml.html.document_fromstring(page).get_element_by_id("step-check").xpath(
        './/*[contains(@class, "card-problem")]')
    with db.session_scope() as session:
        assert session.get(Sequence, sequence_id).status.value == "draft"


def test_pause_then_activate_again(marketer, db, api_marketer):
    make_collateral(db)
    sequence_id = imported(api_marketer, activate=True)
    url = f"/admin/sequences/{sequence_id}"
    token = dict(builder_form(marketer, url))["csrf_token"]
    assert marketer.post(f"{url}/pause", data={"csrf_token": token}).status_code == 302
    with db.session_scope() as session:
        assert session.get(Sequence, sequence_id).status.value == "paused"
    assert "Paused" in marketer.get(url).text
    marketer.post(f"{url}/activate", data={"csrf_token": token})
    with db.session_scope() as session:
        assert session.get(Sequence, sequence_id).status.value == "active"


def test_the_collateral_picker_offers_approved_and_says_why_not_for_the_rest(
        marketer, db, api_marketer):
    from datetime import timedelta

    from nurture.clock import utcnow

    make_collateral(db)
    make_collateral(db, ("old-brochure",), expires_on=utcnow().date() - timedelta(days=1))
    make_collateral(db, ("unsent-draft",), approve=False)
    sequence_id = imported(api_marketer)
    page = lxml.html.document_fromstring(marketer.get(f"/admin/sequences/{sequence_id}").text)
    card = page.get_element_by_id("step-check")
    offered = card.xpath('.//input[@name="stages[1].steps[0].email.collateral"]/@value')
    assert "planning-guide" in offered
    assert "old-brochure" not in offered and "unsent-draft" not in offered
    unpickable = card.xpath('.//*[@class="unpickable"]')[0].text_content()
    assert "expired on" in unpickable and "not approved by sales (it is draft)" in unpickable


def test_yaml_is_viewed_exported_and_imported_as_a_new_version(marketer, db, api_marketer):
    make_collateral(db)
    sequence_id = imported(api_marketer)
    url = f"/admin/sequences/{sequence_id}"
    page = marketer.get(f"{url}/yaml")
    assert "key: timing" in page.text
    download = marketer.get(f"{url}/yaml/download")
    assert download.mimetype == "application/yaml"
    assert "attachment" in download.headers["Content-Disposition"]
    document = yaml.safe_load(download.text)
    assert document == api_marketer.get(f"/api/v1/sequences/{sequence_id}").json
    document["name"] = "Bad timing, imported"
    token = dict(builder_form(marketer, url))["csrf_token"]
    answer = marketer.post(f"{url}/yaml", data={"csrf_token": token,
                                                "document": yaml.safe_dump(document)})
    assert answer.status_code == 302
    assert versions(db, sequence_id) == 2
    assert "Imported as version 2" in marketer.get(url).text


def test_a_broken_yaml_import_names_the_path_and_changes_nothing(marketer, db, api_marketer):
    make_collateral(db)
    sequence_id = imported(api_marketer)
    url = f"/admin/sequences/{sequence_id}"
    token = dict(builder_form(marketer, url))["csrf_token"]
    broken = copy.deepcopy(TWO_STAGES)
    broken["stages"][1]["steps"][0]["type"] = "sms"
    broken["stages"][0]["steps"][1]["duration"] = "soon"
    answer = marketer.post(f"{url}/yaml", data={"csrf_token": token,
                                                "document": yaml.safe_dump(broken)})
    assert answer.status_code == 422
    assert "Not imported: nothing was changed" in answer.text
    assert "stages[0].steps[1].wait.duration" in answer.text
    assert "stages[1].steps[0]" in answer.text
    assert "soon" in answer.text  # the text is kept to fix
    syntax = marketer.post(f"{url}/yaml", data={"csrf_token": token,
                                                "document": "key: [unclosed"})
    assert syntax.status_code == 422 and "not valid YAML" in syntax.text
    other = marketer.post(f"{url}/yaml", data={"csrf_token": token, "document": yaml.safe_dump(
        {**TWO_STAGES, "key": "another"})})
    assert other.status_code == 422 and "this sequence is &#39;timing&#39;" in other.text
    aliases = marketer.post("/admin/sequences/import", data={
        "csrf_token": token, "document": "a: &x [1]\nb: *x\n"})
    assert aliases.status_code == 422 and "anchors and aliases" in aliases.text
    assert versions(db, sequence_id) == 1
    with db.session_scope() as session:
        assert session.query(Sequence).count() == 1


def test_a_yaml_file_imports_a_new_sequence(marketer, db):
    import io

    make_collateral(db)
    token = dict(builder_form(marketer, "/admin/sequences/new"))["csrf_token"]
    answer = marketer.post("/admin/sequences/import", data={
        "csrf_token": token, "file": (io.BytesIO(yaml.safe_dump(TWO_STAGES).encode()),
                                      "timing.yaml")}, content_type="multipart/form-data")
    assert answer.status_code == 302
    with db.session_scope() as session:
        assert session.query(Sequence).one().key == "timing"


def test_the_version_diff_is_readable(marketer, db, api_marketer):
    make_collateral(db)
    sequence_id = imported(api_marketer)
    changed_document = copy.deepcopy(TWO_STAGES)
    changed_document["stages"][0]["steps"][1]["duration"] = "P9D"
    imported(api_marketer, changed_document)
    page = marketer.get(f"/admin/sequences/{sequence_id}/versions?a=1&b=2").text
    html = lxml.html.document_fromstring(page)
    removed = [r.text_content() for r in html.xpath('//tr[@class="diff-removed"]')]
    added = [r.text_content() for r in html.xpath('//tr[@class="diff-added"]')]
    assert len(removed) == 1 and "duration: P2D" in removed[0]
    assert len(added) == 1 and "duration: P9D" in added[0]
    stats = html.xpath('//p[@class="diff-stats"]')[0].text_content()
    assert "+1 line" in stats and "\u22121 line" in stats
    same = marketer.get(f"/admin/sequences/{sequence_id}/versions?a=2&b=2").text
    assert "Pick two different versions" in same
    assert marketer.get(f"/admin/sequences/{sequence_id}/versions?a=7").status_code == 404


def test_the_email_preview_renders_in_a_sandboxed_frame_with_its_own_policy(
        marketer, db, api_marketer, api):
    make_collateral(db)
    sequence_id = imported(api_marketer)
    url = f"/admin/sequences/{sequence_id}/steps/hello"
    page = marketer.get(f"{url}/preview")
    assert page.status_code == 200
    assert "frame-src 'self'" in page.headers["Content-Security-Policy"]
    frames = lxml.html.document_fromstring(page.text).xpath("//iframe")
    assert [f.get("class") for f in frames] == ["frame-desktop", "frame-phone"]
    assert all(f.get("sandbox") == "" for f in frames)
    frame = marketer.get(frames[0].get("src"))
    policy = frame.headers["Content-Security-Policy"]
    assert "script-src" not in policy and "default-src 'none'" in policy
    assert "sandbox" in policy and "frame-ancestors 'self'" in policy
    assert frame.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "Sam" in frame.text and "Planning-Guide" in frame.text
    # a real lead, with stored script in its name: inert
    api.post("/api/v1/rejections", json={
        "lead": {"email": "vera@example.com", "first_name": "<script>alert(1)</script>"},
        "rep_email": "rita@example.com", "reason": "no_need"})
    real = marketer.get(f"{url}/preview/email.html?lead=vera@example.com")
    assert "<script>alert(1)" not in real.text and "&lt;script&gt;" in real.text
    missing = marketer.get(f"{url}/preview?lead=nobody@example.com")
    assert missing.status_code == 422 and "no lead" in missing.text
    assert marketer.get(f"/admin/sequences/{sequence_id}/steps/pause/preview").status_code == 422
    assert marketer.get(f"/admin/sequences/{sequence_id}/steps/nope/preview").status_code == 404


def test_a_test_send_goes_to_oneself(marketer, db, api_marketer, app, smtp_server,
                                     monkeypatch):
    sink, smtp_url = smtp_server
    from dataclasses import replace

    monkeypatch.setitem(app.extensions, "nurture.settings",
                        replace(app.extensions["nurture.settings"], smtp_url=smtp_url))
    make_collateral(db)
    sequence_id = imported(api_marketer)
    url = f"/admin/sequences/{sequence_id}/steps/hello"
    token = dict(builder_form(marketer, f"/admin/sequences/{sequence_id}"))["csrf_token"]
    answer = marketer.post(f"{url}/test-send", data={"csrf_token": token})
    assert answer.status_code == 302
    assert "Test email sent to mara@example.com" in marketer.get(answer.headers["Location"]).text
    (message,) = sink.messages
    assert message["To"] == "mara@example.com" and message["Subject"].startswith("[Test] ")
    assert marketer.post(f"{url}/test-send", data={}).status_code == 400
    assert len(sink.messages) == 1


def test_step_numbers_come_from_the_sequences_report(marketer, db, api_marketer):
    from nurture.clock import utcnow
    from nurture.models import ReportCount

    make_collateral(db)
    sequence_id = imported(api_marketer)
    with db.session_scope() as session:
        for metric, n in (("delivered", 120), ("human_open", 61), ("human_click", 17),
                          ("unsubscribe", 2)):
            session.add(ReportCount(day=utcnow().date(), metric=metric,
                                    sequence_id=sequence_id, step_id="hello", n=n))
        session.add(ReportCount(day=utcnow().date(), metric="exit", sequence_id=sequence_id,
                                step_id="done", n=5))
    page = lxml.html.document_fromstring(marketer.get(f"/admin/sequences/{sequence_id}").text)
    numbers = {dt.text_content(): dd.text_content() for dt, dd in zip(
        page.get_element_by_id("step-hello").xpath(".//dt"),
        page.get_element_by_id("step-hello").xpath(".//dd"), strict=True)}
    assert numbers == {"Sent": "120", "Human opens": "61", "Clicks": "17",
                       "Unsubscribes": "2", "Exits": "0"}
    assert page.get_element_by_id("step-done").xpath(".//dd")[0].text_content() == "5"


def test_the_list_links_to_the_builder(marketer, db, api_marketer):
    make_collateral(db)
    sequence_id = imported(api_marketer)
    page = marketer.get("/admin/sequences").text
    assert f'href="/admin/sequences/{sequence_id}"' in page
    assert 'href="/admin/sequences/new"' in page and 'href="/admin/sequences/import"' in page


def test_an_email_template_is_edited_and_created_without_leaving_the_builder(
        marketer, db, api_marketer):
    from nurture.models.templates import EmailTemplate

    make_collateral(db)
    sequence_id = imported(api_marketer)
    url = f"/admin/sequences/{sequence_id}"
    draft = changed(builder_form(marketer, url), "name", "An unsaved new name")
    opened = post(marketer, url, draft, op="template-open:1:0")  # `check` sends check-in
    assert opened.status_code == 200
    html = lxml.html.document_fromstring(opened.text)
    assert html.xpath('//input[@name="tpl.name"]/@value') == ["check-in"]
    assert "Still on your radar" in html.xpath('//input[@name="tpl.subject"]/@value')[0]
    assert html.xpath('//input[@name="name"]/@value') == ["An unsaved new name"]  # kept
    # a broken template: the problem at its part and line, nothing stored
    broken = changed(form_of(opened.text), "tpl.html", "<p>Hi</p>\n<p>{{ lead.first_name </p>")
    refused = post(marketer, url, broken, op="template-save")
    assert refused.status_code == 422
    error = lxml.html.document_fromstring(refused.text).get_element_by_id("tpl-html-error")
    assert "line 2" in error.text_content()
    with db.session_scope() as session:
        assert session.query(EmailTemplate).count() == 0
    # fixed and saved: stored as a revision, the panel closes, the draft is still there
    fixed = changed(form_of(refused.text), "tpl.html",
                    "<p>Hi {{ lead.first_name or 'there' }}, still planning?</p>")
    saved = post(marketer, url, fixed, op="template-save")
    assert saved.status_code == 200 and "Template &#39;check-in&#39; saved (revision 1)" in saved.text
    page = lxml.html.document_fromstring(saved.text)
    assert not page.xpath('//*[@id="template-panel"]')
    assert page.xpath('//input[@name="name"]/@value') == ["An unsaved new name"]
    with db.session_scope() as session:
        assert "still planning?" in session.query(EmailTemplate).one().html
    # a new template started from a step: created, and that step now sends it
    started = post(marketer, url, form_of(saved.text), op="template-new:0:0")
    new = changed(form_of(started.text), "tpl.name", "pricing-nudge")
    created = post(marketer, url, new, op="template-save")
    assert "Template &#39;pricing-nudge&#39; created" in created.text
    step = lxml.html.document_fromstring(created.text).xpath(
        '//select[@name="stages[0].steps[0].email.template"]/option[@selected]/@value')
    assert step == ["pricing-nudge"]
    taken = post(marketer, url, changed(form_of(started.text), "tpl.name", "check-in"),
                 op="template-save")
    assert taken.status_code == 422 and "that name is taken" in taken.text
    assert versions(db, sequence_id) == 1  # the sequence itself is saved only by Save
    saved_sequence = post(marketer, url, form_of(created.text))
    assert saved_sequence.status_code == 302 and versions(db, sequence_id) == 2
