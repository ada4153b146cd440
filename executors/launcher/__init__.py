"""The launcher: runs one build's steps and reports them to the API over HTTP.

It imports nothing from Django or from the rest of the project and needs only the Python
standard library; docs/launcher-protocol.md is its contract with the server.
"""
