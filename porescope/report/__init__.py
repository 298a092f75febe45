"""The certificate report: document model, Markdown / HTML rendering, offline plots."""
