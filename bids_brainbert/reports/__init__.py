"""Figures (PNG bytes), self-contained HTML reports and the methods boilerplate; no file system access."""
