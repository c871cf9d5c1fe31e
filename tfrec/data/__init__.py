"""Data sources -> one event schema (see `tfrec.data.schema`)."""
