"""A build's whole log as one text file: every step in order, each under a header line.

Read a page of batches at a time (`logs.read_page`), so a long log streams in bounded memory,
under ASGI too (`ChunkedResponse`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from django.http import StreamingHttpResponse

from builds import logs
from builds.models import Build, Step
from screwdriver_site.streaming import ChunkedResponse


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


def text_chunks(build: Build) -> Iterator[str]:
    """The file, step after step in the order they run, one page of lines per chunk.

    Each chunk holds whole lines, each ending in a newline. A page of up to 10,000 lines is
    one chunk, not one line: under ASGI each chunk costs a hop to a thread and back.
    """
    for step in Step.objects.filter(build=build).order_by("position"):
        head = header(step) + "\n"
        start = 0
        while True:
            page = logs.read_page(step=step, start=start, pages=logs.MAX_PAGES)
            if not page.lines:
                break
            yield head + "".join(line["m"] + "\n" for line in page.lines)
            head = ""
            start = page.lines[-1]["n"] + 1
        if head:
            yield head


def download(build: Build) -> StreamingHttpResponse:
    """`text_chunks` as a text/plain attachment named after the build, streamed as it is read
    under WSGI and ASGI alike."""
    response = ChunkedResponse(
        text_chunks(build), content_type="text/plain; charset=utf-8", reads_database=True
    )
    filename = json.dumps(f"build-{build.pk}.log")
    response["Content-Disposition"] = f"attachment; filename={filename}"
    response["Cache-Control"] = "no-store"
    return response
