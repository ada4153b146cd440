"""The REST plumbing every app's /v4 views share: authentication, rights, errors, paging."""
