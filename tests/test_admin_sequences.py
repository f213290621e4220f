"""The sequence builder (nurture/web/admin/sequences.py, sequence_pages.py, sequence_forms.py):
the same documents, validator, versions and activation as the API, through forms."""

from __future__ import annotations

from typing import Any

import lxml.html
import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from nurture.models import Role, SequenceVersion
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
