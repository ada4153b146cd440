"""What a build tells people and its pull request: email and Slack notices of its statuses
(a job's `settings`), its `meta.summary` as a pull request comment and its `meta.status.*`
as extra commit statuses. Both run from the outbox (`screwdriver_site/wiring.py`)."""
