"""The work that talks to the world, run by RQ workers: each job takes ids and calls one rule.

Jobs are enqueued only after the transaction that made their work commits; every job is safe to run
twice, since RQ may, and the tick re-enqueues whatever the database says is still due.
"""
