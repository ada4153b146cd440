"""Pipeline admins move from the `admins` JSON to PipelinePermission rows (the creator too)."""

from django.conf import settings
from django.db import migrations


def forwards(apps, schema_editor):
    Pipeline = apps.get_model("pipelines", "Pipeline")
    PipelinePermission = apps.get_model("pipelines", "PipelinePermission")
    User = apps.get_model(settings.AUTH_USER_MODEL)
    for pipeline in Pipeline.objects.all():
        names = [name for name, on in (pipeline.admins or {}).items() if on]
        ids = set(User.objects.filter(username__in=names).values_list("pk", flat=True))
        if pipeline.creator_id:
            ids.add(pipeline.creator_id)
        for user_id in ids:
            PipelinePermission.objects.get_or_create(
                pipeline=pipeline,
                user_id=user_id,
                defaults={"role": "admin", "granted_by": "migration"},
            )


class Migration(migrations.Migration):
    dependencies = [
        ("pipelines", "0002_permissions_and_templates"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
