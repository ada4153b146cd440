"""The /v4 views of the pipelines app, one module per resource."""
