"""The live wing: transcription while the recording is being made.

    session.py  one stream: its audio cut into chunks, its text as it settles, its transcript at the end
    service.py  the sessions of the app (or of one command), stepped together by one worker thread

The model's side is the `Streamer` capability of its family (localstt/models/capabilities.py); the
page's Live tab, the API's /v1/realtime and `transcribe --live` are the ways in.
"""
