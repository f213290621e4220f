"""The sign-in and reset forms: Flask-WTF gives each a CSRF token and per-field errors."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from nurture.accounts.resets import MAX_PASSWORD_LENGTH
from nurture.accounts.services import MIN_PASSWORD_LENGTH


class SignInForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired("Enter your email address."),
                                            Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired("Enter your password."),
                                                     Length(max=MAX_PASSWORD_LENGTH)])
    next = StringField()  # where to go after signing in; checked by safe_next


class ResetRequestForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired("Enter your email address."),
                                            Length(max=320)])


class NewPasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[
        DataRequired("Choose a new password."),
        Length(MIN_PASSWORD_LENGTH, MAX_PASSWORD_LENGTH,
               f"Use {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters."),
    ])
    confirm = PasswordField("Repeat the new password", validators=[
        DataRequired("Repeat the new password."),
        EqualTo("password", "The two passwords differ."),
    ])
