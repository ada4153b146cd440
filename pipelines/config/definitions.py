"""The screwdriver.yaml schema for the supported keys, with the reference's patterns and wording."""

from __future__ import annotations

import re

from .schema import (
    Alt,
    AnyValue,
    Arr,
    Bool,
    JsRegex,
    Messages,
    Num,
    Obj,
    Path,
    Report,
    Str,
    label,
)

# Patterns are shown to users in error messages, so they are written as the reference writes them.
ENV_NAME = JsRegex(r"^[A-Z_][A-Z0-9_]*$")
STEP_NAME = JsRegex(r"^[\w-]+$")
JOB_NAME = JsRegex(r"^(([\w-]+)|(?:stage@([\w-]+):(setup|teardown)))$")
IMAGE_NAME = JsRegex(r"""^[^;&|><*?`$()!#'" ]+$""")
INTERNAL_TRIGGER = JsRegex(r"^~([\w-]+)$")
STAGE_TRIGGER = JsRegex(r"^~?stage@([\w-]+)(?::([\w-]+))?$")
EXTERNAL_STAGE_TRIGGER = JsRegex(r"^~?sd@\d+:(?:([\w-]+)|(stage@([\w-]+):(setup|teardown)))$")
EXTERNAL_TRIGGER = JsRegex(r"^~sd@(\d+):(?:([\w-]+)|(stage@([\w-]+):setup))$")
TRIGGER = JsRegex(r"^~?(sd@\d+:[\w-]+|(pr|pr-closed|commit|release|tag|subscribe)(:(.+))?)$")
CHECKOUT_URL = JsRegex(
    r"^(?:(?:https:\/\/(?:[^@/:\s]+@)?)|git@|org-\d+@)+([^/:\s]+)(?:\/|:)([^/:\s]+)\/([^\s]+?)"
    r"(?:\.git)(#[^:\u3000\s]*\u3000[^:\u3000\s]*|#[^:\u3000\s]+)?"
    r"(:[^:\u3000\s]*\u3000[^:\u3000\s]*|:[^:\u3000\s]+)?$"
)
WEBHOOK_EVENT = JsRegex(r"^~([\w-]+)$")

_ENV_MESSAGE = {
    "object.unknown": "{label} only supports uppercase letters, digits, and underscore "
    "(cannot start with digit)"
}
_NAME_MESSAGE = {"object.unknown": "{label} only supports the following characters A-Z,a-z,0-9,-,_"}


def _branch_filter(value: str, path: Path, messages: Messages) -> Report | None:
    """Check a trigger such as ``~commit:/^release-.*$/`` (its regex must compile)."""
    error = Report("string.branchFilter", path, f"{label(path)} has invalid trigger format {value}")
    match = TRIGGER.compiled.search(value)
    if match is None:
        return error
    branch = match.group(4)
    if branch is not None and len(branch) > 2 and branch.startswith("/") and branch.endswith("/"):
        try:
            re.compile(branch[1:-1])
        except re.error:
            return error
    return None


STRING = Str()
SECRET = Str(pattern=ENV_NAME, max=64)
ENVIRONMENT = Obj(patterns=[(ENV_NAME, AnyValue())], messages=_ENV_MESSAGE)
MATRIX = Obj(patterns=[(ENV_NAME, Arr())], messages=_ENV_MESSAGE)
JOB_NAME_VALUE = Str(max=100, pattern=JOB_NAME)
_STEP_COMMAND = Alt(options=[STRING, Obj(keys={"command": Str(required=True)})])
STEP = Alt(
    options=[
        STRING,
        Obj(patterns=[(STEP_NAME, _STEP_COMMAND)], length=1, messages=_NAME_MESSAGE),
    ]
)
REQUIRES_VALUE = Alt(
    options=[
        Str(pattern=INTERNAL_TRIGGER),
        JOB_NAME_VALUE,
        Str(rule=_branch_filter),
        Str(pattern=STAGE_TRIGGER),
        Str(pattern=EXTERNAL_STAGE_TRIGGER),
    ]
)
REQUIRES = Alt(options=[Arr(items=REQUIRES_VALUE), REQUIRES_VALUE])
BLOCKED_BY_VALUE = Alt(options=[Str(pattern=INTERNAL_TRIGGER), Str(pattern=EXTERNAL_TRIGGER)])
PARAMETERS = Obj(
    patterns=[
        (
            None,
            Alt(
                options=[
                    STRING,
                    Arr(items=STRING),
                    Obj(
                        keys={
                            "value": Alt(options=[STRING, Arr(items=STRING)], required=True),
                            "description": STRING,
                        },
                        messages={
                            "object.unknown": "only supports string or key: {label} pair as values"
                        },
                    ),
                ]
            ),
        )
    ]
)
IMAGE = Str(pattern=IMAGE_NAME)

# Keys the reference accepts that this server does not implement yet: validated loosely here
# and refused afterwards with a clear error, rather than silently ignored.
UNSUPPORTED_JOB_KEYS = ("cache", "order", "provider", "template", "templateId")
UNSUPPORTED_TOP_KEYS = ("template", "cache", "stages")

JOB = Obj(
    keys={
        "annotations": Obj(),
        "blockedBy": Alt(options=[Arr(items=BLOCKED_BY_VALUE), BLOCKED_BY_VALUE]),
        "cache": Bool(),
        "description": Str(max=100),
        "environment": ENVIRONMENT,
        # Cron syntax is not checked yet (see the README of this package).
        "freezeWindows": Alt(options=[Arr(items=STRING), STRING]),
        "image": IMAGE,
        "matrix": MATRIX,
        "order": Arr(items=Str(pattern=STEP_NAME)),
        "parameters": PARAMETERS,
        "provider": AnyValue(),
        "requires": REQUIRES,
        "secrets": Arr(items=SECRET),
        "settings": Obj(),
        "sourcePaths": Alt(options=[Arr(items=Str(max=1024)), Str(max=1024)]),
        "steps": Arr(items=STEP, min=1),
        "template": STRING,
        "templateId": Num(integer=True, positive=True),
    }
)
SUBSCRIBE = Obj(
    keys={
        "scmUrls": Arr(items=Obj(patterns=[(CHECKOUT_URL, Arr(items=Str(pattern=WEBHOOK_EVENT)))]))
    }
)
CHILD_PIPELINES = Obj(
    keys={
        "scmUrls": Arr(items=Str(pattern=CHECKOUT_URL), min=1, required=True),
        "startAll": Bool(),
    }
)
CONFIG = Obj(
    keys={
        "template": STRING,
        "version": Num(integer=True, min=1, max=50),
        "annotations": Obj(),
        "jobs": Obj(patterns=[(JOB_NAME, JOB)], required=True),
        "shared": JOB,
        "cache": AnyValue(),
        "childPipelines": CHILD_PIPELINES,
        "stages": AnyValue(),
        "subscribe": SUBSCRIBE,
        "parameters": PARAMETERS,
    }
)
