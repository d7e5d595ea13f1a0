"""The web app: upload or record, pick a model, get a transcript, segments and subtitle files; and
OpenAI's API under /v1, in the same process.

    uv run python transcribe_ui.py [--host 127.0.0.1] [--port 7860] [--auth user:password] [--share]

Everything lives in the package's web wing (localstt/web/); this file is its entry point. Importing
the wing first makes the process offline and switches Gradio's analytics off, before gradio loads.
"""

from __future__ import annotations

import sys

from localstt.web.launch import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
