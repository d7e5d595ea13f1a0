"""The runs wing: recordings turned into transcripts and files, one or many, here or on Ray.

    result.py       RecordingResult: one recording's outcome, wherever it ran
    single.py       one recording into a folder (the page's jobs)
    batch.py        many recordings: decoded on threads while the model runs, in batches
    resume.py       a job that can stop and resume: OUT/job.jsonl, what is left, how each one ends
    ray.py          a job on Ray Data: decode tasks and a pool of model replicas
    ray_cluster.py  joining a Ray cluster, or a local instance that never leaves loopback

One bad recording costs only itself: its result carries its one sentence (`failure`), and the others
go on. An error that concerns the whole run (the model is not exported or does not load) is raised.
"""
