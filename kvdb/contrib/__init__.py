"""Integrations with other frameworks: Django's cache backend (kvdb.contrib.django).

Each module imports its framework when it is imported, so `import kvdb` never needs Django; the
frameworks are optional dependencies (the `test` extra installs them for the contract tests).
"""
