"""What a notice says, with everything a repository or a build wrote escaped."""

from __future__ import annotations

from notifications import messages
from notifications.messages import BuildFacts
from pipelines.tests.factories import ESCAPED, XSS


def facts(**changes: object) -> BuildFacts:
    base: dict[str, object] = {
        "build_id": 12,
        "status": "FAILURE",
        "pipeline_id": 3,
        "repo_name": "org/repo",
        "root_dir": "",
        "job_name": "main",
        "sha": "0123456789abcdef" * 2 + "01234567",
        "commit_message": "Fix the thing\n\nLonger story",
        "commit_url": "https://github.com/org/repo/commit/0123456",
        "cause": "Started by alice",
        "build_url": "https://sd.example.com/pipelines/3/builds/12",
        "pipeline_url": "https://sd.example.com/pipelines/3",
    }
    base.update(changes)
    return BuildFacts(**base)  # type: ignore[arg-type]


def test_the_subject_is_screwdrivers() -> None:
    assert messages.email_subject(facts()) == "FAILURE - Screwdriver org/repo main #12"
    assert (
        messages.email_subject(facts(status="FIXED", root_dir="app"))
        == "FIXED - Screwdriver org/repo main app #12"
    )
    # A header never gets a line break from a name.
    assert "\n" not in messages.email_subject(facts(repo_name="a\r\nBcc: x@example.com"))


def test_the_html_email_escapes_what_users_wrote() -> None:
    html = messages.email_html(
        facts(commit_message=XSS, cause=XSS, repo_name=XSS, changed_files=(XSS,))
    )
    assert XSS not in html
    assert html.count(ESCAPED) == 4
    assert 'href="https://sd.example.com/pipelines/3/builds/12"' in html


def test_slack_text_escapes_mentions_links_and_ampersands() -> None:
    assert messages.slack_escape("<!here> & <@U1|x>") == "&lt;!here&gt; &amp; &lt;@U1|x&gt;"
    content = messages.slack_content(
        facts(job_name="<!channel>", cause="<@U123>"),
        minimized=False,
        message="",
        unfurl_links=None,
    )
    assert content["text"] == (
        "*FAILURE* :umbrella: <https://sd.example.com/pipelines/3|org/repo &lt;!channel&gt;>"
    )
    assert content["attachments"][0]["text"] == (
        "Fix the thing\n\nLonger story (<https://github.com/org/repo/commit/0123456|012345>)"
        "\n&lt;@U123&gt;"
    )
    assert "unfurl_links" not in content


def test_slack_cuts_long_commit_messages_and_names_the_source_directory() -> None:
    content = messages.slack_content(
        facts(commit_message="x" * 200, root_dir="app", commit_url=""),
        minimized=False,
        message="line",
        unfurl_links=False,
    )
    assert content["attachments"][0]["text"].startswith("x" * 150 + "... (012345)")
    assert content["text"].endswith("\n*Source Directory:* app\nline")
    linked = messages.slack_content(
        facts(commit_url="https://git.example.com/c?a=1|b>"),
        minimized=False,
        message="",
        unfurl_links=None,
    )
    assert "(<https://git.example.com/c?a=1%7Cb&gt;|012345>)" in linked["attachments"][0]["text"]
    assert content["unfurl_links"] is False


def test_the_pipelines_own_line_keeps_slack_mentions_and_web_links_and_nothing_else() -> None:
    line = (
        "<@U024BE7LH> <@yoshwata> <!here> <#C024BE7LH> <!subteam^S0614TZR7|@team> "
        "see <https://ci.example.com/r?a=1&b=2|the report> & not <javascript:x|y> <b>x</b>"
    )
    assert messages.slack_markup(line) == (
        "<@U024BE7LH> <@yoshwata> <!here> <#C024BE7LH> <!subteam^S0614TZR7|@team> "
        "see <https://ci.example.com/r?a=1&amp;b=2|the report> &amp; not "
        "&lt;javascript:x|y&gt; &lt;b&gt;x&lt;/b&gt;"
    )
    kept = messages.slack_content(
        facts(), minimized=True, message="<!here> look", unfurl_links=None, mentions=True
    )
    shown = messages.slack_content(
        facts(), minimized=True, message="<!here> look", unfurl_links=None
    )
    assert kept["text"].endswith("\n<!here> look")
    assert shown["text"].endswith("\n&lt;!here&gt; look")
