"""A build's whole log as one text file: every step in order, each under a header line.

Read a page of batches at a time (`logs.read_page`), so a long log streams in bounded memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from django.http import StreamingHttpResponse

from builds import logs
from builds.models import Build, Step


def header(step: Step) -> str:
    """The line that opens a step's part of the file: its name and how it ended."""
    if step.code is not None:
        ended = f"exit code {step.code}"
    elif step.end_time is not None:
        ended = "ended"
    elif step.start_time is not None:
        ended = "still running"
    else:
        ended = "not run"
    return f"=== step {step.name} ({ended}) ==="


def text_lines(build: Build) -> Iterator[str]:
    """The file's lines, each ending in a newline, step after step in the order they run."""
    for step in Step.objects.filter(build=build).order_by("position"):
        yield header(step) + "\n"
        start = 0
        while True:
            page = logs.read_page(step=step, start=start, pages=logs.MAX_PAGES)
            if not page.lines:
                break
            for line in page.lines:
                yield line["m"] + "\n"
            start = page.lines[-1]["n"] + 1


def download(build: Build) -> StreamingHttpResponse:
    """`text_lines` as a streamed text/plain attachment named after the build."""
    response = StreamingHttpResponse(text_lines(build), content_type="text/plain; charset=utf-8")
    filename = json.dumps(f"build-{build.pk}.log")
    response["Content-Disposition"] = f"attachment; filename={filename}"
    response["Cache-Control"] = "no-store"
    return response
