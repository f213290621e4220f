"""The operators' forms: Flask-WTF gives each a CSRF token and per-field errors; the rules
themselves (addresses, time zones, who may lose the admin role) are the services'."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from nurture.models import Role

ROLE_CHOICES = [SelectChoice(Role.MARKETER.value, "Marketer"),
                SelectChoice(Role.SALES_APPROVER.value, "Sales approver"),
                SelectChoice(Role.REP.value, "Rep"), SelectChoice(Role.ADMIN.value, "Admin (operator)")]
"""The roles as a person reads them, most common first."""


class UserForm(FlaskForm):
    """A user's name, role, team and time zone (the email is fixed once created)."""

    name = StringField("Name", validators=[Optional(), Length(max=255)])
    role = SelectField("Role", choices=ROLE_CHOICES)
    team = StringField("Team", validators=[Optional(), Length(max=100)])
    timezone = StringField("Time zone", default="UTC", validators=[
        DataRequired("Give an IANA time zone, e.g. Europe/Berlin."), Length(max=64)])


class NewUserForm(UserForm):
    email = EmailField("Email", validators=[DataRequired("Enter the person's email address."),
                                            Length(max=320)])
    send_link = BooleanField("Email them a link to choose a password", default=True)


class ActionForm(FlaskForm):
    """A button that changes something: only its CSRF token."""


class TokenForm(FlaskForm):
    name = StringField("Name", validators=[
        DataRequired("Name the token after what uses it, e.g. salesforce."), Length(max=255)])
    role = SelectField("Role", choices=[SelectChoice(Role.ADMIN.value, "Admin: the whole API"),
                                        SelectChoice(Role.MARKETER.value, "Marketer"),
                                        SelectChoice(Role.SALES_APPROVER.value, "Sales approver")])


class RemoveSuppressionForm(FlaskForm):
    reason = TextAreaField("Why may this address be emailed again?", validators=[
        DataRequired("Say why: it is kept with the removal."), Length(max=1000)])
