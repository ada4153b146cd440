"""Schedule the periodic tasks (reaper, poller, redelivery, retention) on a new database.

They used to be written by a post_migrate handler, which Django never runs for an app without
models: a fresh installation had no reaper. A migration always runs.
"""

from django.db import migrations


def schedule(apps, schema_editor):
    from screwdriver_site.schedules import ensure_periodic_tasks

    ensure_periodic_tasks(apps.get_model("django_q", "Schedule"))


class Migration(migrations.Migration):
    dependencies = [("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more")]

    operations = [migrations.RunPython(schedule, migrations.RunPython.noop)]
