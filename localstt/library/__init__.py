"""The library: every transcript kept in one SQLite file, searchable, correctable and exported again.

    settings.py   config.toml's [library]
    schema.py     the file: its connection settings, schema version and migrations
    records.py    a kept transcript's rows, and the shapes the library answers in
    database.py   Library: add, list, search, open, delete, retention, compaction
    editing.py    edits to a kept transcript, undo, and the original back
    portable.py   the whole library as one file, and back
    keeper.py     what the page, the API, live sessions and the CLI call to keep a transcript

Importing this package imports none of them (config.toml's reader takes only the settings).
"""
