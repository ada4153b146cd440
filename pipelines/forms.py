"""Forms of the pipeline pages; fields are named as the API's, so both send the same thing."""

from __future__ import annotations

from typing import Any

from django import forms

from scm.base import ScmError, check_root_dir

ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"


class CreatePipelineForm(forms.Form):
    """The fields of Screwdriver's create form, named as in its API."""

    checkoutUrl = forms.CharField(
        label="Checkout URL",
        max_length=1024,
        widget=forms.TextInput(
            attrs={"placeholder": "/abs/path/repo.git#main", "autocomplete": "off"}
        ),
    )
    rootDir = forms.CharField(
        label="Source directory (optional)",
        max_length=512,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "app/backend", "autocomplete": "off"}),
    )

    def clean_rootDir(self) -> str:
        value = self.cleaned_data["rootDir"].strip().lstrip("/")
        try:
            return check_root_dir(value) if value else ""
        except ScmError as exc:
            raise forms.ValidationError(str(exc)) from exc


def parameter_default(spec: Any) -> tuple[str, list[str], str]:
    """(default value, choices, description) of one `parameters:` entry in any of its forms."""
    description = ""
    value = spec
    if isinstance(spec, dict):
        value, description = spec.get("value", ""), str(spec.get("description", ""))
    if isinstance(value, list):
        choices = [str(v) for v in value]
        return (choices[0] if choices else ""), choices, description
    return ("" if value is None else str(value)), [], description


class ParametersForm(forms.Form):
    """One field per pipeline parameter, prefilled with its default (a list is a choice)."""

    def __init__(self, parameters: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, spec in (parameters or {}).items():
            default, choices, description = parameter_default(spec)
            field: forms.Field
            if choices:
                field = forms.ChoiceField(
                    choices=[(c, c) for c in choices], initial=default, required=False
                )
            else:
                field = forms.CharField(initial=default, required=False, max_length=1024)
            field.label = str(name)
            field.help_text = description
            self.fields[f"param_{name}"] = field

    def event_meta(self) -> dict[str, Any]:
        """Screwdriver's event meta for the chosen values: {"parameters": {name: {"value"}}}."""
        values = {
            key.removeprefix("param_"): {"value": value}
            for key, value in self.cleaned_data.items()
            if key.startswith("param_")
        }
        return {"parameters": values} if values else {}


class RestartForm(forms.Form):
    """Restart an event from one of its jobs, keeping its sha and meta or from the branch head."""

    MODES = [
        ("inherit", "Same commit, keep this event's meta"),
        ("fresh", "Latest commit, fresh event"),
    ]

    start_from = forms.CharField(label="Job", max_length=128)
    mode = forms.ChoiceField(
        label="How", choices=MODES, initial="inherit", widget=forms.RadioSelect
    )


class SecretForm(forms.Form):
    """Add a secret: a name in capitals and a value that is never shown back."""

    name = forms.RegexField(
        regex=ENV_NAME,
        max_length=64,
        error_messages={"invalid": "Use capital letters, digits and _ (like API_KEY)."},
    )
    value = forms.CharField(
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        max_length=65536,
        strip=False,
    )
    allowInPR = forms.BooleanField(label="Allow in pull requests", required=False)


class SecretUpdateForm(forms.Form):
    """Change a secret: a new value (blank keeps the old one) and its allowInPR flag."""

    value = forms.CharField(
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        max_length=65536,
        required=False,
        strip=False,
    )
    allowInPR = forms.BooleanField(label="Allow in pull requests", required=False)


class TokenForm(forms.Form):
    """A new API token: a name and an optional description."""

    name = forms.CharField(max_length=128)
    description = forms.CharField(max_length=256, required=False)


class JobStateForm(forms.Form):
    """Enable or disable a job, with the reason people will see."""

    state = forms.ChoiceField(choices=[("ENABLED", "Enable"), ("DISABLED", "Disable")])
    message = forms.CharField(label="Reason", max_length=512, required=False)


class DeletePipelineForm(forms.Form):
    """Deleting a pipeline asks for its name, so a stray click cannot do it."""

    confirm = forms.CharField(label="Type the pipeline's name to confirm", max_length=128)


class ClearCacheForm(forms.Form):
    """Which caches to clear, as the API's DELETE names them, and a ticked confirmation."""

    scope = forms.ChoiceField(choices=[(s, s) for s in ("pipelines", "events", "jobs")])
    cacheId = forms.IntegerField(min_value=1, max_value=2**63 - 1)
    confirm = forms.BooleanField(required=True)
