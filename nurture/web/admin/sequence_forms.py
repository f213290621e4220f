"""The sequence builder's form: the sequence document as form fields, and back.

Every field is named by the path the document validator gives its errors under
(`stages[1].steps[2].wait.duration`, `entry.reasons`), so an error lands on its field by name,
in the page and in the live validation alike. The builder's step operations (add, duplicate,
remove, move) work on the draft the form holds, without saving it: the draft is saved, as a
new version, only when it validates whole.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from werkzeug.datastructures import MultiDict

STEP_TYPES = ("email", "wait", "branch", "exit")
"""The step types, in the order the builder offers them."""

ENGAGEMENTS = ("any", "open", "click")

_STAGE = re.compile(r"^stages\[(\d{1,3})\]\.key$")
_STEP = re.compile(r"^stages\[(\d{1,3})\]\.steps\[(\d{1,4})\]\.type$")
_INDEX = re.compile(r"\[\d+\]$")
_OP = re.compile(r"^(step-up|step-down|step-duplicate|step-remove|step-add|stage-add|"
                 r"stage-remove|stage-left|stage-right)(?::(\d{1,3}))?(?::(\d{1,4}))?$")


def starter_document() -> dict[str, Any]:
    """What a new sequence starts from: one stage with an email, a wait and the exit."""
    return {
        "key": "", "name": "", "description": "", "priority": 100,
        "entry": {"reasons": [], "not_ready": False},
        "send_window": {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00",
                        "end": "17:00"},
        "stages": [{"key": "welcome", "name": "Welcome", "steps": [
            {"type": "email", "id": "first-email", "template": "check-in", "collateral": []},
            {"type": "wait", "id": "after-first-email", "duration": "P3D"},
            {"type": "exit", "id": "done", "reason": "completed"},
        ]}],
    }


def _text(form: MultiDict[str, str], name: str) -> str:
    return (form.get(name) or "").strip()


def _number(value: str) -> int | str:
    """An integer when it is one; else the text, for the validator to name."""
    try:
        return int(value)
    except ValueError:
        return value


def _words(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def document_from_form(form: MultiDict[str, str]) -> dict[str, Any]:
    """The draft document the builder's form holds (not validated: the validator does that)."""
    document: dict[str, Any] = {"key": _text(form, "key"), "name": _text(form, "name"),
                                "description": (form.get("description") or "").strip()}
    if _text(form, "priority"):
        document["priority"] = _number(_text(form, "priority"))
    lead: dict[str, Any] = {}
    for name in ("country", "industry", "source", "title_contains"):
        if words := _words(_text(form, f"entry.lead.{name}")):
            lead[name] = words
    size = {bound: _number(_text(form, f"entry.lead.company_size.{bound}"))
            for bound in ("min", "max") if _text(form, f"entry.lead.company_size.{bound}")}
    if size:
        lead["company_size"] = size
    document["entry"] = {"reasons": form.getlist("entry.reasons"),
                         "not_ready": form.get("entry.not_ready") == "1", "lead": lead}
    window: dict[str, Any] = {"days": form.getlist("send_window.days"),
                              "start": _text(form, "send_window.start"),
                              "end": _text(form, "send_window.end")}
    if _text(form, "send_window.timezone"):
        window["timezone"] = _text(form, "send_window.timezone")
    document["send_window"] = window
    stages: dict[int, dict[str, Any]] = {}
    steps: dict[int, dict[int, dict[str, Any]]] = {}
    for name in form:
        if match := _STAGE.match(name):
            si = int(match.group(1))
            stages[si] = {"key": _text(form, name), "name": _text(form, f"stages[{si}].name")}
        elif match := _STEP.match(name):
            si, ti = int(match.group(1)), int(match.group(2))
            steps.setdefault(si, {})[ti] = _step(form, f"stages[{si}].steps[{ti}]",
                                                 _text(form, name))
    document["stages"] = [{**stages[si], "steps": [steps.get(si, {})[ti]
                                                    for ti in sorted(steps.get(si, {}))]}
                          for si in sorted(stages)]
    return document


def _step(form: MultiDict[str, str], base: str, kind: str) -> dict[str, Any]:
    field = f"{base}.{kind}."
    step: dict[str, Any] = {"type": kind, "id": _text(form, field + "id")}
    if kind == "email":
        step["template"] = _text(form, field + "template")
        if subject := (form.get(field + "subject") or "").strip():
            step["subject"] = subject
        step["collateral"] = form.getlist(field + "collateral")
    elif kind == "wait":
        if form.get(field + "mode") == "until":
            step["until"] = {"weekday": _text(form, field + "until.weekday"),
                             "time": _text(form, field + "until.time")}
        else:
            step["duration"] = _text(form, field + "duration")
    elif kind == "branch":
        condition = {"engaged": _text(form, field + "condition.engaged"),
                     "step": _text(form, field + "condition.step"),
                     "within": _text(form, field + "condition.within")}
        if _text(form, field + "condition.collateral"):
            condition["collateral"] = _text(form, field + "condition.collateral")
        step["condition"] = condition
        step["then"] = _text(form, field + "then")
        if _text(form, field + "else"):
            step["else"] = _text(form, field + "else")
    elif kind == "exit":
        step["reason"] = _text(form, field + "reason") or "completed"
    return step


def new_step(document: dict[str, Any], kind: str, si: int) -> dict[str, Any]:
    """A step of this type with a fresh id and sensible defaults, for stage `si`."""
    ids = _step_ids(document)
    step_id = _fresh(f"{kind}-{len(ids) + 1}", ids)
    earlier_emails = [s["id"] for stage in document["stages"][: si + 1] for s in stage["steps"]
                      if s.get("type") == "email"]
    if kind == "email":
        return {"type": "email", "id": step_id, "template": "check-in", "collateral": []}
    if kind == "wait":
        return {"type": "wait", "id": step_id, "duration": "P3D"}
    if kind == "branch":
        return {"type": "branch", "id": step_id,
                "condition": {"engaged": "any", "step": earlier_emails[-1] if earlier_emails
                              else "", "within": "P7D"}, "then": ""}
    return {"type": "exit", "id": step_id, "reason": "completed"}


def _step_ids(document: dict[str, Any]) -> list[str]:
    return [str(s.get("id", "")) for stage in document.get("stages", [])
            for s in stage.get("steps", [])]


def _fresh(wanted: str, taken: list[str]) -> str:
    candidate, n = wanted, 2
    while candidate in taken:
        candidate, n = f"{wanted}-{n}", n + 1
    return candidate[:100]


def apply_operation(
    document: dict[str, Any], operation: str, form: MultiDict[str, str]
) -> tuple[dict[str, Any], str | None]:
    """The draft after one of the builder's buttons, and the button to focus next (so a
    keyboard user moving a step keeps moving it). Unknown or stale operations change nothing."""
    match = _OP.match(operation)
    if not match:
        return document, None
    name = match.group(1)
    si = int(match.group(2)) if match.group(2) is not None else -1
    ti = int(match.group(3)) if match.group(3) is not None else -1
    document = copy.deepcopy(document)
    stages = document["stages"]
    if name == "stage-add":
        keys = [s["key"] for s in stages]
        number = len(stages) + 1
        stages.append({"key": _fresh(f"stage-{number}", keys), "name": f"Stage {number}",
                       "steps": [new_step(document, "wait", len(stages))]})
        return document, f"stage-remove:{len(stages) - 1}"
    if not 0 <= si < len(stages):
        return document, None
    steps = stages[si]["steps"]
    if name == "stage-remove":
        if len(stages) > 1:
            del stages[si]
        return document, None
    if name in ("stage-left", "stage-right"):
        other = si - 1 if name == "stage-left" else si + 1
        if 0 <= other < len(stages):
            stages[si], stages[other] = stages[other], stages[si]
            return document, f"{name}:{other}"
        return document, f"{name}:{si}"
    if name == "step-add":
        kind = form.get(f"stages[{si}].add") or "email"
        if kind in STEP_TYPES:
            steps.append(new_step(document, kind, si))
            return document, f"step-remove:{si}:{len(steps) - 1}"
        return document, None
    if not 0 <= ti < len(steps):
        return document, None
    if name == "step-remove":
        del steps[ti]
        return document, None
    if name == "step-duplicate":
        twin = copy.deepcopy(steps[ti])
        twin["id"] = _fresh(f"{twin.get('id') or 'step'}-copy", _step_ids(document))
        steps.insert(ti + 1, twin)
        return document, f"step-duplicate:{si}:{ti + 1}"
    step = steps.pop(ti)
    if name == "step-up":
        if ti > 0:
            steps.insert(ti - 1, step)
            return document, f"step-up:{si}:{ti - 1}"
        if si > 0:  # the first step of a stage moves to the end of the stage before
            stages[si - 1]["steps"].append(step)
            return document, f"step-up:{si - 1}:{len(stages[si - 1]['steps']) - 1}"
        steps.insert(0, step)
        return document, f"step-down:{si}:0"
    if ti < len(steps):
        steps.insert(ti + 1, step)
        return document, f"step-down:{si}:{ti + 1}"
    if si + 1 < len(stages):  # the last step of a stage moves to the start of the next
        stages[si + 1]["steps"].insert(0, step)
        return document, f"step-down:{si + 1}:0"
    steps.append(step)
    return document, f"step-up:{si}:{len(steps) - 1}"


def anchors(document: dict[str, Any]) -> set[str]:
    """Every place in the builder an error can be shown: the fields, each step's card, each
    stage's column, the entry and send-window groups, and the document itself."""
    places = {"document", "key", "name", "description", "priority", "entry", "entry.reasons",
              "entry.not_ready", "entry.lead", "entry.lead.country", "entry.lead.industry",
              "entry.lead.source", "entry.lead.title_contains", "entry.lead.company_size",
              "entry.lead.company_size.min", "entry.lead.company_size.max", "send_window",
              "send_window.days", "send_window.start", "send_window.end",
              "send_window.timezone", "stages"}
    fields = {
        "email": ("id", "template", "subject", "collateral"),
        "wait": ("id", "duration", "until", "until.weekday", "until.time"),
        "branch": ("id", "condition", "condition.engaged", "condition.step",
                   "condition.collateral", "condition.within", "then", "else"),
        "exit": ("id", "reason"),
    }
    for si, stage in enumerate(document.get("stages", [])):
        places |= {f"stages[{si}]", f"stages[{si}].key", f"stages[{si}].name"}
        for ti, step in enumerate(stage.get("steps", [])):
            card = f"stages[{si}].steps[{ti}]"
            places.add(card)
            kind = step.get("type")
            places |= {f"{card}.{kind}.{name}" for name in fields.get(kind, ())}
    return places


def place_errors(
    errors: dict[str, list[str]], places: set[str]
) -> dict[str, list[dict[str, str]]]:
    """The validator's errors moved onto the nearest place the builder shows: the field of
    that path, else its list, its step's card, its stage, or the document. Each keeps the
    path the validator (and the API) named."""
    placed: dict[str, list[dict[str, str]]] = {}
    for path, messages in errors.items():
        where = path
        while where not in places:
            if _INDEX.search(where):
                where = _INDEX.sub("", where)
            elif "." in where:
                where = where.rsplit(".", 1)[0]
            else:
                where = "document"
                break
        for message in messages:
            placed.setdefault(where, []).append({"path": path, "message": message})
    return placed


def blocked_steps(problems: dict[str, list[str]]) -> dict[str, list[str]]:
    """Activation's refusals (`stages[0].steps[1] (welcome)`) by step id."""
    by_step: dict[str, list[str]] = {}
    for where, messages in problems.items():
        step_id = where.rpartition("(")[2].rstrip(")") if "(" in where else where
        by_step.setdefault(step_id, []).extend(messages)
    return by_step


def describe_duration(value: Any) -> str | None:
    """An ISO 8601 duration in words (`P3D` → `3 days`), None when it is not one."""
    import isodate

    try:
        duration = isodate.parse_duration(str(value))
    except (isodate.ISO8601Error, ValueError, TypeError):
        return None
    parts: list[tuple[float, str]] = []
    if isinstance(duration, isodate.Duration):
        parts += [(float(duration.years), "year"), (float(duration.months), "month")]
        delta = duration.tdelta
    else:
        delta = duration
    days, seconds = delta.days, delta.seconds
    weeks, days = (days // 7, days % 7) if days % 7 == 0 else (0, days)
    parts += [(weeks, "week"), (days, "day"), (seconds // 3600, "hour"),
              (seconds % 3600 // 60, "minute"), (seconds % 60, "second")]
    words = [f"{n:g} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n]
    return ", ".join(words) or None
