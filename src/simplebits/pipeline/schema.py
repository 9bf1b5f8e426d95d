"""``python -m simplebits.pipeline.schema``: print the config keys table of docs/pipeline.md."""

from .config import settings_table

if __name__ == "__main__":  # pragma: no cover
    print(settings_table())
