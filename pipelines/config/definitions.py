"""The screwdriver.yaml schema, with the reference's patterns, defaults and wording."""

from __future__ import annotations

import re

from .cron import is_valid_freeze_window
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
    Schema,
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
    # The reference writes the ideographic space itself, and error messages show its source.
    .replace("\\u3000", "\u3000")
)


class _CheckoutOrLocalUrl(JsRegex):
    """Screwdriver's CHECKOUT_URL, which also accepts a local repository's URL
    (`file:///abs/repo.git#branch[:path]` or `/abs/repo.git#branch[:path]`), as pipelines do
    here; messages name Screwdriver's pattern, so other files read as its parser reads them."""

    _LOCAL = re.compile(r"^(?:file://)?/[^\s#]+(?:#[^:\s]+(?::[^\s]+)?)?\Z")

    def test(self, text: str) -> bool:
        return super().test(text) or self._LOCAL.match(text) is not None


# childPipelines and subscribe name repositories that may be local ones on this server.
REPOSITORY_URL = _CheckoutOrLocalUrl(CHECKOUT_URL.source)
WEBHOOK_EVENT = JsRegex(r"^~([\w-]+)$")
STAGE_NAME = JsRegex(r"^[\w-]+$")
FULL_TEMPLATE_NAME = JsRegex(
    r"^([\w/-]+)(?:@((?:(?:\d+)(?:\.\d+)?(?:\.\d+)?)|(?:[a-zA-Z][\w-.]+)))?$"
)
FULL_TEMPLATE_NAME_WITH_NAMESPACE = JsRegex(
    r"^([\w-]+)\/([\w/-]+)(?:@((?:(?:\d+)(?:\.\d+)?(?:\.\d+)?)|(?:[a-zA-Z][\w-]+)))?$"
)
REGION = JsRegex(r"^(us(-gov)?|ap|ca|cn|eu|sa|me)-(central|(north|south)?(east|west)?)-\d$")
ACCOUNT_ID = JsRegex(r"^[0-9]{12}$")
VPC_ID = JsRegex(r"^vpc-[\w]+$")
SECURITY_GROUP_ID = JsRegex(r"^sg-[\w]+$")
SUBNET_ID = JsRegex(r"^subnet-[\w]+$")
ROLE_ARN = JsRegex(r"^arn:aws:iam::\d{12}:role\/.+")

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

STRING_OR_EMPTY = Str(allow_empty=True)

# RFC 3986 relative-ref, as Joi's string().uri({relativeOnly: true}) builds it (cache paths).
_UNRESERVED = r"\w\-\.~"
_PCT = r"%\dA-Fa-f"
_SUB_DELIMS = r"!\$&'\(\)\*\+,;="
_PCHAR = f"[{_UNRESERVED}{_PCT}{_SUB_DELIMS}:@]"
_SEGMENT_NZ_NC = f"[{_UNRESERVED}{_PCT}{_SUB_DELIMS}@]+"
_OCTET = r"(?:0{0,2}\d|0?[1-9]\d|1\d\d|2[0-4]\d|25[0-5])"
_IPV4 = rf"(?:{_OCTET}\.){{3}}{_OCTET}"
# IP literals are matched loosely: a cache path with one is not worth the full IPv6 grammar.
_IP_LITERAL = rf"\[[\dA-Fa-fvV:.{_UNRESERVED}{_SUB_DELIMS}]+\]"
_HOST = rf"(?:{_IP_LITERAL}|{_IPV4}|[{_UNRESERVED}{_PCT}{_SUB_DELIMS}]{{1,255}})"
_AUTHORITY = rf"(?:[{_UNRESERVED}{_PCT}{_SUB_DELIMS}:]*@)?{_HOST}(?::\d*)?"
_PATH_AB_EMPTY = rf"(?:\/{_PCHAR}*)*"
_RELATIVE_REF = (
    rf"(?:(?:\/\/{_AUTHORITY}{_PATH_AB_EMPTY})|\/(?:{_PCHAR}+{_PATH_AB_EMPTY})?"
    rf"|{_SEGMENT_NZ_NC}{_PATH_AB_EMPTY}|)"
)
RELATIVE_URI = re.compile(
    r"^(?=.)(?!https?:/(?:$|[^/]))(?!https?:///)(?!https?:[^/])"
    + _RELATIVE_REF
    + rf"(?:\?[{_UNRESERVED}{_PCT}{_SUB_DELIMS}:@\/\?]*(?=#|$))?"
    + rf"(?:#[{_UNRESERVED}{_PCT}{_SUB_DELIMS}:@\/\?]*)?\Z",
    re.ASCII,
)


def _relative_uri(value: str, path: Path, messages: Messages) -> Report | None:
    """Refuse a cache path that is not a relative URI."""
    if RELATIVE_URI.match(value):
        return None
    return Report("string.uriRelativeOnly", path, f"{label(path)} must be a valid relative uri")


def _cron(value: str, path: Path, messages: Messages) -> Report | None:
    """Refuse a freeze window the reference's cron rule refuses (with its odd message)."""
    if is_valid_freeze_window(value):
        return None
    return Report(
        "string.cron",
        path,
        'Error code "string.cron" is not defined, your custom type is missing '
        "the correct messages definition",
    )


CRON = Str(rule=_cron)
SOURCE_PATHS = Alt(options=[Arr(items=Str(max=1024)), Str(max=1024)])
PROVIDER = Obj(
    keys={
        "name": Str(valid=("aws",), max=64),
        "region": Str(pattern=REGION, max=64, default="us-west-2"),
        "buildRegion": Str(pattern=REGION, max=64, default="", allow_empty=True),
        "accountId": Alt(options=[Str(pattern=ACCOUNT_ID, max=12), Num(integer=True, min=12)]),
        "vpc": Obj(
            keys={
                "vpcId": Str(pattern=VPC_ID, max=128, required=True),
                "securityGroupIds": Arr(
                    items=Str(pattern=SECURITY_GROUP_ID, max=128),
                    min=1,
                    required=True,
                    label="List of security group IDs",
                ),
                "subnetIds": Arr(
                    items=Str(pattern=SUBNET_ID, max=128),
                    min=1,
                    required=True,
                    label="List of subnet IDs",
                ),
            }
        ),
        "role": Str(pattern=ROLE_ARN, max=512),
        "executor": Str(valid=("sls", "eks"), max=64),
        "clusterName": Str(max=128),
        "cpuLimit": Str(max=4),
        "memoryLimit": Str(max=4),
        "executorLogs": Bool(default=False),
        "launcherImage": STRING,
        "launcherVersion": STRING,
        "privilegedMode": Bool(default=False),
        "computeType": Str(
            valid=(
                "BUILD_GENERAL1_SMALL",
                "BUILD_GENERAL1_LARGE",
                "BUILD_GENERAL1_MEDIUM",
                "BUILD_GENERAL1_2XLARGE",
            ),
            default="BUILD_GENERAL1_SMALL",
        ),
        "environmentType": Str(
            valid=("ARM_CONTAINER", "LINUX_CONTAINER", "LINUX_GPU_CONTAINER"),
            default="LINUX_CONTAINER",
        ),
        "debugSession": Bool(default=False),
    }
)


def job_schema(**overrides: Schema) -> Obj:
    """Return the job schema, with some keys replaced (stage setup and teardown jobs)."""
    keys: dict[str, Schema] = {
        "annotations": Obj(),
        "blockedBy": Alt(options=[Arr(items=BLOCKED_BY_VALUE), BLOCKED_BY_VALUE]),
        "cache": Bool(),
        "description": Str(max=100),
        "environment": ENVIRONMENT,
        "freezeWindows": Alt(options=[Arr(items=CRON), CRON]),
        "image": IMAGE,
        "matrix": MATRIX,
        "order": Arr(items=Str(pattern=STEP_NAME)),
        "parameters": PARAMETERS,
        "provider": Alt(options=[PROVIDER, Str(pattern=CHECKOUT_URL)]),
        "requires": REQUIRES,
        "secrets": Arr(items=SECRET),
        "settings": Obj(),
        "sourcePaths": SOURCE_PATHS,
        "steps": Arr(items=STEP, min=1),
        "template": Str(pattern=FULL_TEMPLATE_NAME),
        "templateId": Num(integer=True, positive=True, nullable=True),
    }
    for key, schema in overrides.items():
        # Joi's .keys() moves a redefined key to the end, which orders its errors last.
        keys.pop(key, None)
        keys[key] = schema
    return Obj(keys=keys, default={})


JOB = job_schema()
CACHE_LIST = Arr(items=Str(rule=_relative_uri))
CACHE = Obj(
    keys={
        "event": CACHE_LIST,
        "pipeline": CACHE_LIST,
        "job": Obj(patterns=[(JOB_NAME_VALUE, CACHE_LIST)]),
    },
    any_of=("event", "pipeline", "job"),
)
STAGE = Obj(
    keys={
        "description": STRING,
        "jobs": Arr(items=JOB_NAME_VALUE),
        "setup": job_schema(requires=AnyValue(forbidden=True)),
        "teardown": job_schema(
            requires=AnyValue(forbidden=True), sourcePaths=AnyValue(forbidden=True)
        ),
        "requires": REQUIRES,
        "sourcePaths": SOURCE_PATHS,
    }
)
SUBSCRIBE = Obj(
    keys={
        "scmUrls": Arr(
            items=Obj(patterns=[(REPOSITORY_URL, Arr(items=Str(pattern=WEBHOOK_EVENT)))])
        )
    }
)
CHILD_PIPELINES = Obj(
    keys={
        "scmUrls": Arr(items=Str(pattern=REPOSITORY_URL), min=1, required=True),
        "startAll": Bool(),
    }
)
_CONFIG_KEYS: dict[str, Schema] = dict(
    {
        "template": Str(pattern=FULL_TEMPLATE_NAME_WITH_NAMESPACE),
        "version": Num(integer=True, min=1, max=50),
        "annotations": Obj(),
        "jobs": Obj(patterns=[(JOB_NAME_VALUE, JOB)], required=True),
        "shared": JOB,
        "cache": CACHE,
        "childPipelines": CHILD_PIPELINES,
        "stages": Obj(patterns=[(STAGE_NAME, STAGE)], messages=_NAME_MESSAGE),
        "subscribe": SUBSCRIBE,
        "parameters": Obj(patterns=PARAMETERS.patterns, default={}),
    }
)
CONFIG = Obj(keys=_CONFIG_KEYS)
# With a pipeline template, jobs are optional and `shared` may set only a few fields.
CONFIG_WITH_TEMPLATE = Obj(
    keys={
        **_CONFIG_KEYS,
        "jobs": Obj(patterns=[(JOB_NAME_VALUE, JOB)]),
        "shared": Obj(
            keys={
                "image": IMAGE,
                "environment": ENVIRONMENT,
                "settings": Obj(),
                "requires": REQUIRES,
                "sourcePaths": SOURCE_PATHS,
            }
        ),
    }
)
# What the merged document must satisfy once a pipeline template is laid under the file.
CONFIG_AFTER_TEMPLATE = Obj(
    keys={
        **{key: schema for key, schema in _CONFIG_KEYS.items() if key != "template"},
        "templateVersionId": Num(integer=True, positive=True),
    }
)
