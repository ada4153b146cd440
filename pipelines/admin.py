"""Django admin for pipelines, jobs, events, secrets, tokens, permissions and templates."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from builds.services import stop_event
from pipelines import services
from pipelines.models import (
    Collection,
    DeployKey,
    Event,
    Job,
    Pipeline,
    PipelinePermission,
    Secret,
    SignInGeneration,
    Token,
)


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "checkout_url", "state", "hook_installed", "created_at"]
    list_filter = ["state", "scm_context", "hook_installed"]
    search_fields = ["name", "checkout_url"]
    readonly_fields = ["last_event", "last_seen_sha", "workflow_graph", "created_at"]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "pipeline", "state", "archived"]
    list_filter = ["state", "archived"]
    search_fields = ["name", "pipeline__name"]
    list_select_related = ["pipeline"]
    actions = ["disable_jobs", "enable_jobs"]

    def _set_state(self, request: HttpRequest, queryset: QuerySet[Job], state: str) -> None:
        verb = "Disabled" if state == Job.State.DISABLED else "Enabled"
        for job in queryset:
            services.set_job_state(
                job=job,
                state=state,
                message=f"{verb} from the admin",
                changer=request.user.get_username(),
            )
        self.message_user(request, f"{verb} {len(queryset)} job(s).", messages.SUCCESS)

    @admin.action(description="Disable the selected jobs")
    def disable_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._set_state(request, queryset, Job.State.DISABLED)

    @admin.action(description="Enable the selected jobs")
    def enable_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._set_state(request, queryset, Job.State.ENABLED)


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["id", "pipeline", "sha", "start_from", "status", "created_at"]
    list_filter = ["status", "type"]
    search_fields = ["sha", "pipeline__name", "cause_message"]
    list_select_related = ["pipeline"]
    readonly_fields = ["workflow_graph", "job_configs", "meta", "commit", "creator", "status"]
    actions = ["stop_events"]

    @admin.action(description="Stop the selected events")
    def stop_events(self, request: HttpRequest, queryset: QuerySet[Event]) -> None:
        for event in queryset:
            stop_event(event=event, message=f"Aborted by {request.user.get_username()}")
        self.message_user(request, f"Stopped {len(queryset)} event(s).", messages.SUCCESS)


@admin.register(Secret)
class SecretAdmin(admin.ModelAdmin):
    list_display = ["id", "pipeline", "name", "allow_in_pr", "created_at"]
    search_fields = ["name", "pipeline__name"]
    list_filter = ["allow_in_pr"]
    # The value is never shown back, not even encrypted; secrets are added where they get
    # encrypted (the pipeline's Secrets page or the API).
    exclude = ["encrypted_value"]
    list_select_related = ["pipeline"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(DeployKey)
class DeployKeyAdmin(admin.ModelAdmin):
    list_display = ["id", "pipeline", "fingerprint", "created_at"]
    search_fields = ["pipeline__name", "fingerprint"]
    # The private half is never shown, not even encrypted; keys are made by syncing a
    # pipeline that asks for one, and replaced through the API.
    exclude = ["encrypted_private_key"]
    readonly_fields = ["pipeline", "public_key", "fingerprint", "created_at"]
    list_select_related = ["pipeline"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Token)
class TokenAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "user", "pipeline", "last_used", "created_at"]
    search_fields = ["name", "user__username"]
    exclude = ["hash"]
    list_select_related = ["user", "pipeline"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A token's value exists only when it is made: make them on the settings pages.
        return False


@admin.register(SignInGeneration)
class SignInGenerationAdmin(admin.ModelAdmin):
    """How often each person's JWTs were revoked; an action revokes them once more."""

    list_display = ["user", "generation"]
    search_fields = ["user__username"]
    readonly_fields = ["user", "generation"]
    list_select_related = ["user"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A row appears with a person's first sign-out; revoking is the action below.
        return False

    @admin.action(description="Revoke every JWT of the selected people")
    def revoke(self, request: HttpRequest, queryset: QuerySet[SignInGeneration]) -> None:
        for row in queryset.select_related("user"):
            services.revoke_user_jwts(user=row.user)
        messages.success(request, f"Revoked the JWTs of {queryset.count()} people.")


@admin.register(PipelinePermission)
class PipelinePermissionAdmin(admin.ModelAdmin):
    list_display = ["id", "pipeline", "user", "role", "granted_by", "created_at"]
    list_filter = ["role"]
    search_fields = ["pipeline__name", "user__username"]
    list_select_related = ["pipeline", "user"]
    autocomplete_fields = ["pipeline", "user"]


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "user", "created_at"]
    search_fields = ["name", "user__username"]
    list_select_related = ["user"]
    filter_horizontal = ["pipelines"]


# Job templates: builds publish them (/v4/templates); a row added here has no owner pipeline.
from pipelines.models import Stage, Template, TemplateTag, Trigger  # noqa: E402


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "namespace",
        "name",
        "version",
        "pipeline",
        "latest",
        "trusted",
        "maintainer",
        "created_at",
    ]
    list_filter = ["namespace", "trusted", "latest"]
    list_select_related = ["pipeline"]
    raw_id_fields = ["pipeline"]
    search_fields = ["namespace", "name", "description"]


@admin.register(TemplateTag)
class TemplateTagAdmin(admin.ModelAdmin):
    list_display = ["id", "namespace", "name", "tag", "version"]
    list_filter = ["namespace"]
    search_fields = ["namespace", "name", "tag"]


# Commands: builds publish them (/v4/commands, sd-cmd); their binaries live in the outputs storage.
from pipelines.models import Command, CommandTag  # noqa: E402


@admin.register(Command)
class CommandAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "namespace",
        "name",
        "version",
        "format",
        "pipeline",
        "latest",
        "trusted",
        "created_at",
    ]
    list_filter = ["namespace", "format", "trusted", "latest"]
    list_select_related = ["pipeline"]
    raw_id_fields = ["pipeline"]
    search_fields = ["namespace", "name", "description"]
    readonly_fields = ["binary_name", "binary_size"]


@admin.register(CommandTag)
class CommandTagAdmin(admin.ModelAdmin):
    list_display = ["id", "namespace", "name", "tag", "version"]
    list_filter = ["namespace"]
    search_fields = ["namespace", "name", "tag"]


# Pipeline templates: builds publish them (/v4/pipeline/template).
from pipelines.models import (  # noqa: E402
    PipelineTemplate,
    PipelineTemplateTag,
    PipelineTemplateVersion,
)


@admin.register(PipelineTemplate)
class PipelineTemplateAdmin(admin.ModelAdmin):
    list_display = ["id", "namespace", "name", "pipeline", "latest_version", "maintainer"]
    list_filter = ["namespace"]
    list_select_related = ["pipeline"]
    raw_id_fields = ["pipeline"]
    search_fields = ["namespace", "name"]


@admin.register(PipelineTemplateVersion)
class PipelineTemplateVersionAdmin(admin.ModelAdmin):
    list_display = ["id", "template", "version", "description", "created_at"]
    list_select_related = ["template"]
    raw_id_fields = ["template"]
    search_fields = ["template__namespace", "template__name", "description"]


@admin.register(PipelineTemplateTag)
class PipelineTemplateTagAdmin(admin.ModelAdmin):
    list_display = ["id", "template", "tag", "version"]
    list_select_related = ["template"]
    raw_id_fields = ["template"]
    search_fields = ["template__namespace", "template__name", "tag"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the job sync owns: shown, never edited by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Stage)
class StageAdmin(ReadOnlyAdmin):
    list_display = ["id", "name", "pipeline", "archived"]
    list_filter = ["archived"]
    search_fields = ["name", "pipeline__name"]
    list_select_related = ["pipeline"]


@admin.register(Trigger)
class TriggerAdmin(ReadOnlyAdmin):
    list_display = ["id", "src", "dest", "pipeline"]
    search_fields = ["src", "dest"]
    list_select_related = ["pipeline"]
