"""The test kit: what the tests, the benchmarks, the scripts and the processes they start share.

    hubserver.py           a Hugging Face Hub on 127.0.0.1, serving what a test seeds it with
    tiny_models.py         tiny models of the real NeMo classes, built offline, and their fixtures
    store_env.py           a throwaway project (config.toml + local_models/) wired to the test hub
    offline.py             every socket but loopback blocked in a process, attempts written down
    namespaces.py          unprivileged user namespaces, for the tests that need a tmpfs or a netns
    clip_length_family.py  a fourth model family, defined in one module, only for the tests
    app.py                 the real web app started as its own process on 127.0.0.1

It lives at the top of the checkout and is found by the project's packaging (pyproject.toml lists it
beside `localstt`, so the editable install in .venv imports it), by pytest's `pythonpath`, and, in
the processes that tests start, by the PYTHONPATH they are given (`Project.env`). It is never
imported by `localstt`.
"""
