"""Deploy keys: made when a pipeline asks for one, replaced when its admin asks."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction

from pipelines.deploy_keys import new_key_pair
from pipelines.encryption import encrypt
from pipelines.models import DeployKey, Pipeline


def _comment(pipeline: Pipeline) -> str:
    host = urlsplit(settings.SD_UI_URL).hostname or "screwdriver"
    return f"sd-pipeline-{pipeline.pk}@{host}"


def ensure_deploy_key(*, pipeline: Pipeline) -> DeployKey | None:
    """The pipeline's deploy key, made now if its screwdriver.yaml asks for one it lacks."""
    if not pipeline.uses_deploy_key:
        return None
    found = DeployKey.objects.filter(pipeline=pipeline).first()
    if found is not None:
        return found
    pair = new_key_pair(_comment(pipeline))
    # Two syncs at once make one key: the second finds the first's row.
    key, _created = DeployKey.objects.get_or_create(
        pipeline=pipeline,
        defaults={
            "public_key": pair.public,
            "fingerprint": pair.fingerprint,
            "encrypted_private_key": encrypt(pair.private),
        },
    )
    return key


@transaction.atomic
def replace_deploy_key(*, pipeline: Pipeline) -> DeployKey:
    """A new key pair in place of the pipeline's (the old public key stops working once it is
    removed from the repository)."""
    pair = new_key_pair(_comment(pipeline))
    DeployKey.objects.filter(pipeline=pipeline).delete()
    return DeployKey.objects.create(
        pipeline=pipeline,
        public_key=pair.public,
        fingerprint=pair.fingerprint,
        encrypted_private_key=encrypt(pair.private),
    )
