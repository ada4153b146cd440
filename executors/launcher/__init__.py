"""The launcher: runs one build's steps and reports them to the API over HTTP.

It imports nothing from Django or from the rest of the project and needs only the Python
standard library, but for the `websockets` client of its log socket (livesocket.py), which it
imports only when a page watches the build and does without when it is missing;
docs/launcher-protocol.md is its contract with the server.
"""
